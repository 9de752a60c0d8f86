"""The phantom generator and dataset, the Decathlon layout, DICOM+CSV and MedMNIST readers."""
from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from medical.datasets import ct_phantom, decathlon, dicom_csv, medmnist, medmnist_files
from medical.io.dicom import read_series
from medical.io.nifti import write_nifti
from medical.phantom import HU, LABELS
from tests.medical.helpers import small_phantom, write_series
from zoo.errors import InputError


def test_phantom_is_deterministic_and_varies_with_the_seed():
    a, a_labels = small_phantom(11)
    b, b_labels = small_phantom(11)
    c, _ = small_phantom(12)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a_labels.array, b_labels.array)
    assert not np.array_equal(a.array, c.array)


def test_phantom_has_realistic_hu_per_structure():
    ct, labels = small_phantom(13)
    for label, name in enumerate(LABELS[1:], start=1):
        values = ct.array[labels.array == label]
        assert values.size > 20, name
        assert abs(values.mean() - HU[name]) < 6, name
        assert 8 < values.std() < 16, name  # the noise
    assert (ct.array == HU["air"]).mean() > 0.2
    assert abs(np.median(ct.array[(ct.array > -200) & (ct.array < -50)]) - HU["fat"]) < 15


def test_phantom_dataset_is_real_dicom_cached_and_marked_synthetic(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    splits = ct_phantom(n_train=1, n_val=0, n_test=0)
    assert splits.card["synthetic"] is True and splits.labels == LABELS
    case = splits.train[0]
    image, labels = case.load()
    assert case.image.parent.parent == tmp_path / "ct-phantom-v1"
    ds = pydicom.dcmread(next(case.image.iterdir()))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
        assert UID(uid).is_valid
    assert labels.same_grid(image) and set(np.unique(labels.array)) <= {0, 1, 2, 3}
    mtime = case.label.stat().st_mtime
    ct_phantom(n_train=1, n_val=0, n_test=0).train[0].load()
    assert case.label.stat().st_mtime == mtime  # cached, not rewritten
    spacings = {tuple(np.round(c.load()[0].spacing, 2)) for c in ct_phantom(n_train=3, n_val=0, n_test=0).train}
    assert len(spacings) == 3  # pixel and slice spacing vary between phantoms


def _decathlon(tmp_path, shift_label: bool = False, crop_label: bool = False):
    root = tmp_path / "Task99_Phantom"
    pairs = []
    for seed in (21, 22, 23):
        ct, labels = small_phantom(seed)
        if crop_label:
            labels = labels.__class__(labels.array[:, :-2], labels.affine)
        if shift_label:
            labels.affine = labels.affine.copy()
            labels.affine[2, 3] += 6.0
        write_nifti(ct, root / "imagesTr" / f"case_{seed}.nii.gz")
        write_nifti(labels, root / "labelsTr" / f"case_{seed}.nii.gz")
        pairs.append({"image": f"./imagesTr/case_{seed}.nii.gz", "label": f"./labelsTr/case_{seed}.nii.gz"})
    manifest = {"name": "Phantom", "modality": {"0": "CT"}, "labels": {str(i): n for i, n in enumerate(LABELS)},
                "training": pairs}
    (root / "dataset.json").write_text(json.dumps(manifest))
    return root


def test_decathlon_layout_reads_pairs_on_one_grid(tmp_path):
    splits = decathlon(_decathlon(tmp_path), val_fraction=0.34)
    assert splits.labels == LABELS and len(splits.train) == 2 and len(splits.val) == 1
    image, labels = splits.train[0].load()
    assert image.same_grid(labels) and labels.array.max() == 3


def test_decathlon_mask_of_another_shape_or_grid_is_an_error(tmp_path):
    with pytest.raises(InputError, match="must match its image voxel for voxel"):
        decathlon(_decathlon(tmp_path / "a", crop_label=True)).train[0].load()
    with pytest.raises(InputError, match="not on the grid of its image"):
        decathlon(_decathlon(tmp_path / "b", shift_label=True)).train[0].load()


def test_dicom_csv_reads_files_and_series_folders(tmp_path):
    rows = ["path,label,split"]
    for seed, (label, split) in enumerate([("a", "train"), ("b", "train"), ("a", "val"), ("b", "val")]):
        ct, _ = small_phantom(30 + seed)
        write_series(ct, tmp_path / f"s{seed}", uid_seed=f"csv{seed}")
        rows.append(f"s{seed},{label},{split}")
    rows.append(f"{sorted((tmp_path / 's0').iterdir())[0].relative_to(tmp_path)},b,train")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = dicom_csv(tmp_path / "labels.csv")
    assert splits.classes == ["a", "b"] and len(splits.train) == 3 and len(splits.val) == 2
    middle = read_series(tmp_path / "s0")
    np.testing.assert_array_equal(splits.train.images[0], middle.array[middle.shape[0] // 2])
    assert splits.train.images[2].shape == middle.shape[1:]
    (tmp_path / "bad.csv").write_text("path,label\nnowhere,a\ns1,b\n")
    with pytest.raises(InputError, match="does not exist"):
        dicom_csv(tmp_path / "bad.csv")


def write_medmnist(path, sizes=(40, 10, 12), classes: int = 2, seed: int = 0):
    """A small file of MedMNIST's schema: uint8 N×28×28 images and N×1 labels per split."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        labels = rng.integers(0, classes, size=(n, 1)).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        images[labels[:, 0] == 1, 8:20, 8:20] += 150  # class 1: a bright square
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def test_medmnist_npz_schema(tmp_path, monkeypatch):
    path = write_medmnist(tmp_path / "medmnist" / "pneumoniamnist.npz")
    splits = medmnist(path)
    assert splits.classes == ["normal", "pneumonia"] and len(splits.train) == 40 and len(splits.test) == 12
    assert splits.value_range == (0.0, 255.0) and splits.train.images[0].shape == (28, 28)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    assert medmnist_files() == {"pneumoniamnist": path}
    np.savez(tmp_path / "broken.npz", train_images=np.zeros((2, 28, 28)))
    with pytest.raises(InputError, match="missing train_labels"):
        medmnist(tmp_path / "broken.npz")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_medmnist_npz_is_an_input_error(tmp_path, damage):
    path = write_medmnist(tmp_path / "pneumoniamnist.npz")
    payload = bytearray(path.read_bytes())
    if damage == "truncate":
        del payload[len(payload) // 2:]
    else:  # inside the first member's deflated data: its CRC no longer matches
        for at in range(60, 90):
            payload[at] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(InputError, match="expected a MedMNIST .npz file"):
        medmnist(path)


@pytest.fixture
def medmnist_server(tmp_path, monkeypatch):
    """A loopback server holding one small MedMNIST-schema file, standing in for Zenodo."""
    import hashlib
    import http.server
    import threading

    import medical.datasets as datasets

    payload = write_medmnist(tmp_path / "upstream" / "breastmnist.npz").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setattr(datasets, "MEDMNIST_URL", f"http://127.0.0.1:{httpd.server_address[1]}/{{flag}}.npz")
    monkeypatch.setitem(datasets.MEDMNIST_MD5, "breastmnist", hashlib.md5(payload).hexdigest())
    monkeypatch.delenv("ZOO_DATA", raising=False)
    yield datasets
    httpd.shutdown()
    httpd.server_close()


def test_medmnist_download_is_md5_checked_into_the_cache(medmnist_server, isolated_zoo_home, monkeypatch):
    from zoo.errors import WeightsIntegrityError

    path = medmnist_server.fetch_medmnist("breastmnist")
    assert path == isolated_zoo_home / "datasets" / "medmnist" / "breastmnist.npz"
    assert medmnist(path).classes == ["malignant", "normal, benign"]
    path.unlink()
    monkeypatch.setitem(medmnist_server.MEDMNIST_MD5, "breastmnist", "0" * 32)
    with pytest.raises(WeightsIntegrityError, match="expected 0{32}"):
        medmnist_server.fetch_medmnist("breastmnist")
    assert not list(path.parent.iterdir())  # nothing half-written is left behind


def test_medmnist_download_goes_through_the_zoo_store(medmnist_server, isolated_zoo_home, monkeypatch):
    from zoo import cache

    calls, real = [], cache.fetch
    monkeypatch.setattr(cache, "fetch", lambda wf, **kw: calls.append((wf, kw)) or real(wf, **kw))
    path = medmnist_server.fetch_medmnist("breastmnist")
    [(wf, kw)] = calls
    assert (wf.source, wf.digest, kw["dest"]) == (medmnist_server.MEDMNIST_URL.format(flag="breastmnist"),
                                                  f"md5:{medmnist_server.MEDMNIST_MD5['breastmnist']}", path)
    assert medmnist_server.fetch_medmnist("breastmnist") == path and len(calls) == 1  # found: not fetched again
