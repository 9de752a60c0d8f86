import numpy as np
import pytest
from PIL import Image

from vision.datasets import digits, image_folder, load_splits, stratified_split
from zoo.errors import InputError, UnknownDatasetError


def test_digits_split_is_fixed_disjoint_stratified_and_fingerprinted():
    first, second = digits(), digits()
    assert first.fingerprint == second.fingerprint
    sizes = [len(first.train), len(first.val), len(first.test)]
    assert sum(sizes) == 1797 and sizes[2] == pytest.approx(0.2 * 1797, abs=10)
    # Every class is present in every split in about the same proportion.
    for split in (first.train, first.val, first.test):
        counts = np.bincount(split.labels, minlength=10) / len(split)
        assert np.all(np.abs(counts - 0.1) < 0.03)


def test_stratified_split_partitions_every_index_once():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    parts = stratified_split(labels, {"val": 0.2, "test": 0.1}, seed=1)
    joined = np.sort(np.concatenate(list(parts.values())))
    assert np.array_equal(joined, np.arange(60))
    assert np.bincount(labels[parts["val"]]).tolist() == [2, 4, 6]
    assert stratified_split(labels, {"val": 0.2}, seed=1)["val"].tolist() != stratified_split(labels, {"val": 0.2}, seed=2)["val"].tolist()


def _write_folder(root, per_class=5, corrupt=True):
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    if corrupt:
        (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "dogs" / "notes.txt").write_text("ignored")


def test_image_folder_reports_corrupt_images_by_path_and_keeps_the_rest(tmp_path):
    _write_folder(tmp_path)
    splits = image_folder(tmp_path, val_fraction=0.2)
    assert splits.classes == ["cats", "dogs"]
    assert len(splits.train) + len(splits.val) == 10 and len(splits.val) == 2
    assert [path for path, _ in splits.skipped] == [str(tmp_path / "dogs" / "broken.jpg")]
    image, label = splits.train.with_transform(None)[0]
    assert image.size == (10, 12) and label in (0, 1)


def test_image_folder_fingerprint_follows_file_contents(tmp_path):
    _write_folder(tmp_path, corrupt=False)
    before = image_folder(tmp_path).fingerprint
    Image.new("RGB", (10, 12), "white").save(tmp_path / "cats" / "0.png")
    assert image_folder(tmp_path).fingerprint != before


def test_bad_data_sources_say_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="at least 2 class sub-folders"):
        (tmp_path / "only").mkdir()
        image_folder(tmp_path)
    with pytest.raises(UnknownDatasetError, match="vision/digits"):
        load_splits("vision/digit")


def test_image_folder_names_an_empty_class_folder(tmp_path):
    _write_folder(tmp_path, corrupt=False)
    (tmp_path / "birds").mkdir()
    (tmp_path / "birds" / "README.txt").write_text("no images here")
    with pytest.raises(InputError, match=rf"{tmp_path / 'birds'} has none; add images or remove the empty class folder"):
        image_folder(tmp_path)


def test_image_folder_names_a_class_whose_images_are_all_unreadable(tmp_path):
    _write_folder(tmp_path, corrupt=False)
    (tmp_path / "birds").mkdir()
    (tmp_path / "birds" / "a.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=rf"every image in {tmp_path / 'birds'} is unreadable: {tmp_path / 'birds' / 'a.png'}: "):
        image_folder(tmp_path)
