"""The medical benchmark suite: 3-D segmentation of the CT phantoms, molecular property regression
(:mod:`medical.molecules.bench`, when RDKit is installed), and MedMNIST classification when present.

Segmentation rows report Dice and HD95 (mean over foreground classes, and per
class) on the test phantoms, each volume segmented end to end on its own grid,
with the latency per volume. Control arm: an HU-threshold segmentation (smoothed
CT, organ HU ranges, the liver's largest connected component, lesions inside
it), so the U-Net's numbers read against what intensities alone give.

MedMNIST rows (a ``{flag}.npz`` in ``$ZOO_DATA/medmnist`` or the zoo cache) train the
classification-2d recipe (ResNet-18 at 28×28, as the paper's "ResNet-18 (28)")
and show MedMNIST v2's published test numbers beside ours.
"""
from __future__ import annotations

import importlib.util
import tempfile
import time
from functools import partial

import numpy as np

from zoo.bench import BenchTask, TaskOutput, step

SEGMENTATION_MODEL = "medical/unet3d.ct_phantom"
PHANTOM_DATASET = "medical/ct-phantom"
# HU ranges of the control arm, [low, high) per label, after Gaussian smoothing (σ = 1 voxel).
THRESHOLDS_HU = {1: (80.0, 135.0), 2: (135.0, 240.0), 3: (5.0, 60.0)}
# MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023, Table 3), ResNet-18 (28), test split.
MEDMNIST_REFERENCE = {
    "pneumoniamnist": {"auc": 0.944, "accuracy": 0.854},
    "breastmnist": {"auc": 0.901, "accuracy": 0.863},
    "octmnist": {"accuracy": 0.743},
}
MEDMNIST_SOURCE = "MedMNIST v2, Sci. Data 10:41 (2023), Table 3, ResNet-18 (28)"


def suite(quick: bool = False) -> list[BenchTask]:
    """U-Net and HU-threshold control on the test phantoms (2 with ``quick``, else 6); the molecule rows; MedMNIST
    sets that are present.

    The U-Net runs on each backend asked for (sliding-window inference stays outside the graph).
    """
    from medical.datasets import medmnist_files

    cases = 2 if quick else None
    tasks = [
        BenchTask(name="unet3d@ct-phantom", model=SEGMENTATION_MODEL, dataset=PHANTOM_DATASET, per_backend=True,
                  run=partial(_run_unet, cases)),
        BenchTask(name="hu-threshold@ct-phantom", model="control/hu-threshold", dataset=PHANTOM_DATASET,
                  backend="numpy", control=True, run=partial(_run_threshold, cases)),
    ]
    if importlib.util.find_spec("rdkit") is not None:
        from medical.molecules.bench import tasks as molecule_tasks

        tasks += molecule_tasks(quick)
    for flag, path in medmnist_files().items():
        reference = MEDMNIST_REFERENCE.get(flag)
        tasks.append(BenchTask(
            name=f"resnet18@{flag}", model="medical/classifier2d.resnet18", dataset=f"medmnist/{flag}",
            run=partial(_run_medmnist, str(path), quick),
            reference={"source": MEDMNIST_SOURCE, "metrics": reference} if reference else None,
        ))
    return tasks


def _test_cases(count: int | None) -> list:
    from medical.datasets import ct_phantom

    return ct_phantom(n_train=0, n_val=0, n_test=count).test


def _segmentation_output(segment, count: int | None, params: int | None) -> TaskOutput:
    """Dice/HD95 per case (per-example values for the CI) and the time to segment each volume."""
    from medical.metrics import segmentation_scores
    from medical.phantom import LABELS

    scores, latencies = [], []
    cases = _test_cases(count)
    for number, case in enumerate(cases, 1):
        step(f"segmenting test volume {number}/{len(cases)}")
        image, target = case.load()
        start = time.perf_counter()
        prediction = segment(image)
        latencies.append((time.perf_counter() - start) * 1000)
        scores.append(segmentation_scores(prediction, target.array, LABELS, spacing=image.spacing))
    names = list(scores[0])
    return TaskOutput(
        metrics={name: float(np.mean([s[name] for s in scores])) for name in names},
        per_example={name: np.array([s[name] for s in scores]) for name in ("dice", "hd95")},
        latency_ms=latencies,
        throughput=1000.0 / float(np.mean(latencies)),
        throughput_unit="volumes/s",
        params=params,
        extra={"cases": len(scores)},
    )


def _run_unet(count: int | None, seed: int, backend: str) -> TaskOutput:
    import torch

    from zoo.hub import load

    torch.manual_seed(seed)
    model = load(SEGMENTATION_MODEL, backend=backend)
    model.predict(_test_cases(1)[0].load()[0])  # warm-up
    return _segmentation_output(lambda image: model.predict(image).array, count, model.num_params)


def _run_threshold(count: int | None, seed: int) -> TaskOutput:
    return _segmentation_output(lambda image: hu_threshold_segment(image.array, image.spacing), count, params=0)


def hu_threshold_segment(hu: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """The control arm: label voxels by smoothed HU ranges; liver = its largest component, lesions inside its hull."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma=1.0)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    liver = (smooth >= THRESHOLDS_HU[1][0]) & (smooth < THRESHOLDS_HU[1][1])
    components, count = ndimage.label(liver)
    if count:
        sizes = ndimage.sum_labels(liver, components, index=np.arange(1, count + 1))
        liver = components == 1 + int(np.argmax(sizes))
    hull = np.stack([ndimage.binary_fill_holes(plane) for plane in liver])
    kidney = (smooth >= THRESHOLDS_HU[2][0]) & (smooth < THRESHOLDS_HU[2][1]) & ~hull
    lesion = (smooth >= THRESHOLDS_HU[3][0]) & (smooth < THRESHOLDS_HU[3][1]) & hull & ~liver
    labels[liver], labels[kidney], labels[lesion] = 1, 2, 3
    return labels


def _run_medmnist(path: str, quick: bool, seed: int) -> TaskOutput:
    from medical.recipes import Classification2DRecipe

    step(f"training ResNet-18 on {path}")
    recipe = Classification2DRecipe(data=path, max_train_images=2000 if quick else None,
                                    train={"epochs": 2 if quick else 10, "seed": seed})
    with tempfile.TemporaryDirectory() as out:
        result = recipe.run(out, progress=False)
    test = {m["name"]: m["value"] for m in result.metrics if m["split"] == "test"}
    return TaskOutput(metrics={"auc": test["auc"], "accuracy": test["accuracy"]},
                      extra={"epochs": recipe.train.epochs, "train_images": recipe.max_train_images or "all"})
