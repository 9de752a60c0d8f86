"""One line from DICOM to DICOM: the bundled U-Net on a phantom series, from Python and from the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

import zoo
from medical.deid import is_deidentified
from medical.io.dicom import read_series
from medical.metrics import dice
from medical.phantom import LABELS, ct_phantom
from medical.io.seg import read_seg
from medical.io.volume import Volume
from tests.medical.helpers import write_series
from zoo.errors import InputError

SHAPE, SPACING = (36, 72, 72), (5.0, 4.5, 4.5)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ct, labels = ct_phantom(501, shape=SHAPE, spacing=SPACING)
    folder = tmp_path_factory.mktemp("predict") / "series"
    write_series(ct, folder, uid_seed="predict")
    return folder, labels


@pytest.fixture(scope="module")
def model():
    return zoo.load("medical/unet3d.ct_phantom", device="cpu")


@pytest.fixture(scope="module")
def prediction(case, model):
    return model.predict(model.adapter.read(case[0]))


def test_python_predict_gives_a_label_map_on_the_input_grid(case, prediction):
    folder, labels = case
    volume = read_series(folder)
    assert isinstance(prediction, Volume) and prediction.same_grid(volume) and prediction.array.dtype == np.uint8
    assert prediction.metadata["labels"] == LABELS
    for label in (1, 2, 3):
        assert dice(prediction.array, labels.array, label) > 0.8, LABELS[label]


def test_predict_on_a_flipped_series_maps_back_to_its_own_grid(case, model, tmp_path):
    _, labels = case
    ct, _ = ct_phantom(501, shape=SHAPE, spacing=SPACING)
    affine = ct.affine.copy()  # rows run anterior and columns to the patient's right: a transposed acquisition
    affine[:3, 3] += affine[:3, 1] * (SHAPE[1] - 1) + affine[:3, 2] * (SHAPE[2] - 1)
    affine[:3, 1:3] *= -1
    write_series(Volume(ct.array[:, ::-1, ::-1].copy(), affine), tmp_path / "flipped", uid_seed="flipped")
    volume = read_series(tmp_path / "flipped")
    prediction = model.predict(volume)
    assert dice(prediction.array[:, ::-1, ::-1], labels.array, 1) > 0.85


def test_cli_predict_writes_a_seg_referencing_the_series(case, tmp_path):
    folder, labels = case
    out = tmp_path / "seg.dcm"
    result = subprocess.run([sys.executable, "-m", "zoo", "predict", "medical/unet3d.ct_phantom", str(folder), "--out", str(out)],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "written to" in result.stdout
    series = read_series(folder)
    seg = pydicom.dcmread(out)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.metadata["series_instance_uid"]
    assert is_deidentified(seg)
    back = read_seg(out, series)
    assert dice(back.array, labels.array, 1) > 0.85 and dice(back.array, labels.array, 2) > 0.8


def test_write_other_formats_and_refuse_unknown_ones(model, prediction, tmp_path):
    from medical.io.nifti import read_nifti

    nifti = model.adapter.write(prediction, tmp_path / "seg.nii.gz")
    assert read_nifti(nifti).same_grid(prediction)
    with pytest.raises(InputError, match="expected an output file ending in one of"):
        model.adapter.write(prediction, tmp_path / "seg.png")
    with pytest.raises(InputError, match="expected a medical.Volume"):
        model.predict(np.zeros((8, 8, 8)))


def test_importing_zoo_and_listing_loads_neither_torch_nor_pydicom():
    code = ("import sys, zoo; from zoo.registry import get_registry; r = get_registry(); "
            "assert 'medical/unet3d.ct_phantom' in r.models; zoo.info('medical/unet3d.ct_phantom'); "
            "bad = [m for m in ('torch', 'pydicom', 'highdicom', 'nibabel', 'scipy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_label_map_is_described_by_its_voxel_counts_not_printed(model, prediction):
    line = model.adapter.describe(prediction)
    counts = {LABELS[v]: n for v, n in zip(*np.unique(prediction.array, return_counts=True))}
    assert line.startswith("label map 36×72×72 at 5×4.5×4.5 mm; voxels per label: ")
    assert line.endswith(", ".join(f"{name} {n:,}" for name, n in counts.items()))


def test_cli_predict_names_the_segmentation_file_formats_before_the_model_runs(tmp_path):
    from tests.zoo.test_cli import run_console_script

    wrong = run_console_script("predict", "medical/unet3d.ct_phantom", str(tmp_path), "--out", str(tmp_path / "seg.txt"))
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "error: --out: expected a file ending in one of .dcm, .nii, .nii.gz, .npy, got seg.txt"
