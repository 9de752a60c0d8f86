"""Custom data as a CSV of path,label[,split] rows."""
import numpy as np
import pytest
from PIL import Image

from vision.datasets import image_csv, load_splits
from zoo.errors import InputError


def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (8, 6, 3), dtype=np.uint8)).save(path)
    return path


def _dataset(root, per_class=5, classes=("dog", "cat", "bird")):
    """Images under root/img/; returns the rows (relative path, label)."""
    rows = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            rel = f"img/{name}_{i}.png"
            _image(root / rel, seed=10 * c + i)
            rows.append((rel, name))
    return rows


def _write_csv(path, header, rows):
    path.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")
    return path


def test_csv_with_relative_paths_splits_stratified_with_sorted_classes(tmp_path):
    rows = _dataset(tmp_path)
    csv_path = _write_csv(tmp_path / "data.csv", "path,label", rows)
    splits = image_csv(csv_path, val_fraction=0.2)
    assert splits.classes == ["bird", "cat", "dog"]
    assert (len(splits.train), len(splits.val), splits.test) == (12, 3, None)
    assert np.bincount(splits.val.labels).tolist() == [1, 1, 1]
    image, label = splits.train.with_transform(None)[0]
    assert image.size == (6, 8) and label in (0, 1, 2)
    assert splits.train.images[0].is_absolute()
    assert image_csv(csv_path, val_fraction=0.2).fingerprint == splits.fingerprint
    assert image_csv(csv_path, val_fraction=0.2, seed=1).fingerprint != splits.fingerprint
    three = image_csv(csv_path, val_fraction=0.2, test_fraction=0.2)
    assert (len(three.train), len(three.val), len(three.test)) == (9, 3, 3)


def test_csv_fingerprint_follows_file_contents(tmp_path):
    csv_path = _write_csv(tmp_path / "data.csv", "path,label", _dataset(tmp_path))
    before = image_csv(csv_path).fingerprint
    Image.new("RGB", (6, 8), "white").save(tmp_path / "img" / "cat_0.png")
    assert image_csv(csv_path).fingerprint != before


def test_csv_split_column_is_honoured_and_absolute_paths_work(tmp_path):
    rows = _dataset(tmp_path / "elsewhere", per_class=2, classes=("a", "b"))
    split = ["train", "val", "train", "test"]
    listed = [(str(tmp_path / "elsewhere" / rel), label, s) for (rel, label), s in zip(rows, split)]
    (tmp_path / "sub").mkdir()
    csv_path = _write_csv(tmp_path / "sub" / "data.csv", "Path, Label ,SPLIT", listed)
    splits = image_csv(csv_path)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [2, 1, 1]
    assert splits.val.images == [tmp_path / "elsewhere" / rows[1][0]]
    assert splits.test.labels.tolist() == [1]


def test_csv_split_column_without_test_rows_has_no_test_split(tmp_path):
    rows = _dataset(tmp_path, per_class=2, classes=("a", "b"))
    csv_path = _write_csv(tmp_path / "d.csv", "path,label,split", [(p, l, s) for (p, l), s in zip(rows, ["train", "val", "train", "train"])])
    assert image_csv(csv_path).test is None
    no_val = _write_csv(tmp_path / "e.csv", "path,label,split", [(p, l, "train") for p, l in rows])
    with pytest.raises(InputError, match="expected rows with split=val"):
        image_csv(no_val)


def test_csv_bad_split_values_are_listed_with_line_numbers(tmp_path):
    rows = _dataset(tmp_path, per_class=2, classes=("a", "b"))
    csv_path = _write_csv(tmp_path / "d.csv", "path,label,split", [(p, l, s) for (p, l), s in zip(rows, ["train", "valid", "train", ""])])
    with pytest.raises(InputError, match=r"line 3: split 'valid' is not one of train/val/test; line 5: split ''"):
        image_csv(csv_path)


def test_csv_missing_columns_say_which_were_found(tmp_path):
    csv_path = _write_csv(tmp_path / "d.csv", "file,label", [("img/a.png", "a")])
    with pytest.raises(InputError, match=r"missing path, found columns \['file', 'label'\]"):
        image_csv(csv_path)
    # A header is required: a first row of data is reported as the columns it found.
    headerless = _write_csv(tmp_path / "h.csv", "img/a.png,cat", [("img/b.png", "dog")])
    with pytest.raises(InputError, match=r"missing path,label, found columns \['img/a.png', 'cat'\]"):
        image_csv(headerless)


def test_csv_empty_file_and_header_only_are_reported(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="found an empty file"):
        image_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("path,label\n\n")
    with pytest.raises(InputError, match="expected at least one path,label row .* after the header, found none"):
        image_csv(tmp_path / "header.csv")
    with pytest.raises(InputError, match="found no file"):
        image_csv(tmp_path / "absent.csv")


def test_csv_missing_paths_are_listed_up_to_five_with_line_numbers(tmp_path):
    rows = _dataset(tmp_path, per_class=3, classes=("a", "b"))
    rows += [(f"img/gone_{i}.png", "a") for i in range(7)]
    csv_path = _write_csv(tmp_path / "d.csv", "path,label", rows)
    with pytest.raises(InputError) as info:
        image_csv(csv_path)
    message = str(info.value)
    assert "7 do not" in message and "line 8: img/gone_0.png" in message and "line 12: img/gone_4.png" in message
    assert "gone_5" not in message and "(and 2 more)" in message
    assert str(tmp_path) in message


def test_csv_class_with_too_few_images_to_split_is_named(tmp_path):
    rows = _dataset(tmp_path, per_class=5, classes=("a", "b")) + _dataset(tmp_path, per_class=2, classes=("rare",))
    csv_path = _write_csv(tmp_path / "d.csv", "path,label", rows)
    with pytest.raises(InputError, match=r"expected at least 3 images per class .* val_fraction=0.2, but 'rare' has 2"):
        image_csv(csv_path, val_fraction=0.2)
    # With a split column, the user's assignment is used as given.
    listed = [(p, l, "val" if p.endswith("_0.png") else "train") for p, l in rows]
    assert len(image_csv(_write_csv(tmp_path / "s.csv", "path,label,split", listed)).val) == 3


def test_csv_unreadable_images_are_skipped_and_reported_by_path(tmp_path):
    rows = _dataset(tmp_path, per_class=5, classes=("a", "b"))
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    csv_path = _write_csv(tmp_path / "d.csv", "path,label", rows + [("img/broken.png", "a")])
    splits = image_csv(csv_path)
    assert [path for path, _ in splits.skipped] == [str(tmp_path / "img" / "broken.png")]
    assert len(splits.train) + len(splits.val) == 10


def test_load_splits_dispatches_a_csv_path(tmp_path):
    csv_path = _write_csv(tmp_path / "data.csv", "path,label", _dataset(tmp_path))
    assert load_splits(csv_path, val_fraction=0.2).source == str(csv_path.resolve())
    assert len(load_splits(str(csv_path), val_fraction=0.4).val) == 6
    with pytest.raises(InputError, match="found no file"):
        load_splits(tmp_path / "typo.csv")


def test_csv_fingerprint_survives_moving_the_folder(tmp_path):
    (tmp_path / "a").mkdir()
    _write_csv(tmp_path / "a" / "data.csv", "path,label", _dataset(tmp_path / "a"))
    before = image_csv(tmp_path / "a" / "data.csv").fingerprint
    (tmp_path / "a").rename(tmp_path / "b")
    assert image_csv(tmp_path / "b" / "data.csv").fingerprint == before


@pytest.mark.parametrize("tail, message", [
    # An unclosed quote swallows the rows after it (issue 13, item 9).
    ['"img/dog_0.png,dog\nimg/cat_0.png,cat\n', r"line 3: malformed CSV .*unexpected end of data"],
    # ... or merges two rows into one with too few fields.
    ['"img/dog_0.png,dog\nimg/cat_0.png,cat"\n', r"expected 2 fields in every row.* line 3 has 1"],
    ["img/dog_0.png,dog,extra\n", r"line 3 has 3"],
])
def test_ragged_or_merged_rows_are_errors_naming_the_line(tmp_path, tail, message):
    rows = _dataset(tmp_path, per_class=2, classes=("dog", "cat"))
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(f"path,label\n{rows[1][0]},dog\n" + tail)
    with pytest.raises(InputError, match=message):
        image_csv(csv_path, val_fraction=0.2)


def test_fractions_outside_their_range_are_errors(tmp_path):
    csv_path = _write_csv(tmp_path / "data.csv", "path,label", _dataset(tmp_path))
    with pytest.raises(InputError, match=r"val_fraction must be in \[0, 1\), got -0.1"):
        image_csv(csv_path, val_fraction=-0.1)
    with pytest.raises(InputError, match=r"val_fraction=0.5 \+ test_fraction=0.5 is at least 1"):
        image_csv(csv_path, val_fraction=0.5, test_fraction=0.5)


def test_an_image_listed_twice_is_an_error_naming_both_lines(tmp_path):
    rows = _dataset(tmp_path)
    csv_path = _write_csv(tmp_path / "data.csv", "path,label", rows + [("./" + rows[0][0], "cat")])
    with pytest.raises(InputError, match=rf"line 17: ./{rows[0][0]} is listed already on line 2"):
        image_csv(csv_path, val_fraction=0.2)
