"""The medical suite: U-Net vs the HU-threshold control on phantoms; MedMNIST rows only when their files exist."""
from __future__ import annotations

import numpy as np

from medical.bench import MEDMNIST_REFERENCE, hu_threshold_segment, suite
from medical.metrics import dice, hd95, segmentation_scores
from tests.medical.helpers import small_phantom
from tests.medical.test_datasets import write_medmnist
from zoo.bench import run_tasks


def test_dice_and_hd95_on_known_shapes():
    a = np.zeros((20, 20, 20), dtype=np.uint8)
    b = a.copy()
    a[5:15, 5:15, 5:15] = 1
    b[5:15, 5:15, 7:17] = 1  # shifted by 2 voxels along columns
    assert dice(a, b, 1) == 2 * 800 / 2000
    assert hd95(a, b, 1, spacing=(1.0, 1.0, 3.0)) == 6.0  # 2 voxels × 3 mm
    assert hd95(a, a, 1) == 0.0 and dice(a, a, 2) == 1.0
    scores = segmentation_scores(a, np.zeros_like(a), ["background", "organ"])
    assert scores["dice"] == 0.0 and np.isfinite(scores["hd95"])  # a miss counts as the volume's diagonal


def test_threshold_control_finds_organs_but_not_perfectly():
    ct, labels = small_phantom(61)
    prediction = hu_threshold_segment(ct.array, ct.spacing)
    assert dice(prediction, labels.array, 1) > 0.6  # intensities alone find most of the liver
    assert dice(prediction, labels.array, 3) < 0.9


def test_suite_rows_and_medmnist_only_when_present(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    names = [task.name for task in suite(quick=True)]
    assert names[:2] == ["unet3d@ct-phantom", "hu-threshold@ct-phantom"]
    assert not any("resnet18" in name for name in names)  # the molecule rows follow when RDKit is installed
    write_medmnist(tmp_path / "medmnist" / "pneumoniamnist.npz")
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    tasks = {task.name: task for task in suite(quick=True)}
    medmnist = tasks["resnet18@pneumoniamnist"]
    assert medmnist.reference["metrics"] == MEDMNIST_REFERENCE["pneumoniamnist"]
    assert "Table 3" in medmnist.reference["source"]
    rows = run_tasks([tasks["unet3d@ct-phantom"], tasks["hu-threshold@ct-phantom"]], suite="medical",
                     out_dir=tmp_path / "results", progress=False)
    by_model = {row["model"]: row for row in rows}
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    unet, control = by_model["medical/unet3d.ct_phantom"], by_model["control/hu-threshold"]
    assert control["control"] and unet["metrics"]["dice"]["mean"] > 0.85 > control["metrics"]["dice"]["mean"]
    assert unet["metrics"]["hd95"]["mean"] < control["metrics"]["hd95"]["mean"]
    assert unet["latency_ms"]["p50"] > 0 and unet["throughput"]["unit"] == "volumes/s"
    assert (tmp_path / "results" / "leaderboard.md").is_file()
