"""Fuzz: export bundles (zoo.runtime.load_bundle + predict).

One tiny real bundle (vision/digits_cnn.sklearn) is exported once; each example
copies it, mutates it (JSON fields deleted, retyped or changed, hostile refs and
file names, bytes truncated/flipped/inserted, files added, removed or replaced by
folders and symlinks), optionally reseals it (manifest and digest rewritten: a
full rewrite), then loads it and predicts. Property: an unchanged bundle gives
the original predictions; a changed one never loads against the pinned digest,
nor without the pin unless it was resealed -- and then it gives a result or a
``ZooError``, never another exception.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from tests.fuzz import harness
from zoo.errors import InputError
from zoo.runtime import load_bundle, recorded_digest, seal

IMAGES = list(load_digits().images[:3])
JSON_FILES = ("bundle.json", "manifest.json", "card.json", "parity.json")
FILES = JSON_FILES + ("model.onnx", "manifest.sha256")
HOSTILE_STRINGS = ["this:x", "os:system", "zoo.runtime:Bundle", "nlp.tokenizer:TextBatcher", "zoo.runtime:ArrayBatcher",
                   "../outside.txt", "/etc/hostname", "model.onnx", "card.json", "sub/x", "", "\0", "..", "0" * 64]
HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 20), st.sampled_from([10 ** 30, -(10 ** 30), 2 ** 63]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_STRINGS), st.text(max_size=8),
    st.lists(st.integers(-2, 10), max_size=4), st.lists(st.floats(-2, 2), max_size=4), st.just({}),
    st.just({"sha256": "0" * 64, "size": 1}),
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """The exported bundle, its digest, a snapshot of its files and its predictions."""
    from zoo.export import export

    bundle = export("vision/digits_cnn.sklearn", tmp_path_factory.mktemp("fuzz-bundle") / "digits")
    return Original(bundle, recorded_digest(bundle), snapshot(bundle), load_bundle(bundle).predict(IMAGES))


class Original(tuple):
    """(folder, digest, snapshot, predictions), shown briefly in hypothesis's reports."""

    def __new__(cls, *fields):
        return super().__new__(cls, fields)

    def __repr__(self) -> str:
        return f"Original({self[0]})"


def snapshot(directory: Path) -> dict:
    """Every entry of the folder: its kind and content (bytes, link target)."""
    entries = {}
    for entry in os.scandir(directory):
        path = Path(entry.path)
        entries[entry.name] = ("link", os.readlink(path)) if path.is_symlink() else \
            ("dir", None) if path.is_dir() else ("file", path.read_bytes())
    return entries


def load_and_predict(directory: Path, sha256: str | None = None):
    return load_bundle(directory, sha256=sha256).predict(IMAGES)


# -- mutations ---------------------------------------------------------------------------------------
def mutate_json(data, directory: Path) -> None:
    """Delete, retype or change one value somewhere in one JSON file (or break its syntax)."""
    path = directory / data.draw(st.sampled_from(JSON_FILES))
    if not path.is_file():
        return
    document = read_object(path)
    parent, key = walk(data, document)
    action = data.draw(st.sampled_from(["delete", "replace", "nudge", "syntax"]))
    if action == "syntax":
        path.write_text(json.dumps(document)[:-1])
        return
    if parent is None:
        document = data.draw(HOSTILE_VALUES)
    elif action == "delete":
        del parent[key]
    elif action == "nudge" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = parent[key] + data.draw(st.sampled_from([1, -1, 0.5, 1e-6, 1e6]))
    else:
        parent[key] = data.draw(HOSTILE_VALUES)
    path.write_text(json.dumps(document, indent=data.draw(st.sampled_from([None, 2]))))


def walk(data, document):
    """A random (container, key) inside ``document``; ``(None, None)`` for the whole document."""
    parent, key, node = None, None, document
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 3)) > 0:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys))
        node = node[key]
    return parent, key


def mutate_hostile(data, directory: Path) -> None:
    """A hostile preprocessing ref or file name in bundle.json, or a hostile name in the manifest."""
    target = data.draw(st.sampled_from(["ref", "tokenizer", "manifest-name"]))
    path = directory / ("manifest.json" if target == "manifest-name" else "bundle.json")
    if not path.is_file():
        return
    document = read_object(path)
    value = data.draw(st.sampled_from(HOSTILE_STRINGS))
    if target == "ref":
        document["preprocessing"] = {**(document.get("preprocessing") or {}), "ref": value}
    elif target == "tokenizer":
        document["preprocessing"] = {"ref": "nlp.transforms:TextBatcher", "spec": {"tokenizer": value, "max_length": 8}}
    else:
        document["files"] = {**(document.get("files") or {}), value: {"sha256": "0" * 64, "size": 0}}
    path.write_text(json.dumps(document))


SPEC_FIELDS = ("size", "channels", "mean", "std", "array_range", "crop_pct", "interpolation", "max_pixels", "shape",
               "dtype")


def mutate_spec(data, directory: Path) -> None:
    """A hostile value deep down, where a walk rarely gets: the preprocessing spec, top_k, the labels."""
    target = data.draw(st.sampled_from(["spec", "ref+spec", "top_k", "labels"]))
    path = directory / ("card.json" if target == "labels" else "bundle.json")
    if not path.is_file():
        return
    document = read_object(path)
    value = data.draw(HOSTILE_VALUES)
    if target == "labels":
        document["labels"] = value if data.draw(st.booleans()) else [str(i) for i in range(data.draw(st.integers(0, 12)))]
    elif target == "top_k":
        document["postprocessing"] = {"kind": data.draw(st.sampled_from(["classification", "raw"])), "top_k": value}
    else:
        pre = document.get("preprocessing") if isinstance(document.get("preprocessing"), dict) else {}
        if target == "ref+spec":
            pre["ref"] = data.draw(st.sampled_from(["zoo.runtime:ArrayBatcher", "vision.transforms:ImageBatcher"]))
        spec = pre.get("spec") if isinstance(pre.get("spec"), dict) else {}
        spec[data.draw(st.sampled_from(SPEC_FIELDS))] = value
        document["preprocessing"] = {**pre, "spec": spec}
    path.write_text(json.dumps(document))


def read_object(path: Path) -> dict:
    """A JSON file's object, or an empty one when an earlier mutation broke it."""
    try:
        document = json.loads(path.read_text())
    except (ValueError, OSError):
        return {}
    return document if isinstance(document, dict) else {}


def mutate_bytes(data, directory: Path) -> None:
    """Truncate, flip, insert or delete bytes of one file."""
    path = directory / data.draw(st.sampled_from(FILES))
    if not path.is_file():
        return
    content = bytearray(path.read_bytes())
    at = data.draw(st.integers(0, max(len(content) - 1, 0)))
    action = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    if action == "truncate":
        content = content[:at]
    elif action == "flip" and content:
        content[at] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "insert":
        content[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        del content[at:at + data.draw(st.integers(1, 64))]
    path.write_bytes(bytes(content))


def mutate_files(data, directory: Path) -> None:
    """Add a file, remove one, or replace one by a folder or by a symlink to an identical copy outside."""
    name = data.draw(st.sampled_from(FILES))
    path = directory / name
    action = data.draw(st.sampled_from(["add", "remove", "folder", "symlink"]))
    if action == "add":
        (directory / data.draw(st.sampled_from([".hidden", "notes.txt", "tokenizer.json", "model.onnx.data"]))) \
            .write_bytes(data.draw(st.binary(max_size=32)))
    elif not path.is_file() or path.is_symlink():
        return
    elif action == "remove":
        path.unlink()
    elif action == "folder":
        path.unlink()
        path.mkdir()
    else:
        outside = directory.parent / f"outside-{name}"
        shutil.copyfile(path, outside)
        path.unlink()
        path.symlink_to(outside)


MUTATIONS = [mutate_json, mutate_spec, mutate_hostile, mutate_bytes, mutate_files]


# -- the property --------------------------------------------------------------------------------------
def check(original, mutate) -> str:
    source, digest, pristine, expected = original
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-bundle-") as scratch:
        bundle = Path(shutil.copytree(source, Path(scratch) / "bundle"))
        resealed = mutate(bundle)
        final, everything = snapshot(bundle), harness.files_under(Path(scratch))
        pinned = harness.call("bundle-pinned", load_and_predict, bundle, digest)
        unpinned = harness.call("bundle", load_and_predict, bundle)
        assert snapshot(bundle) == final and harness.files_under(Path(scratch)) == everything, "loading wrote files"
        if final == pristine:
            for got in (pinned, unpinned):
                assert got is not None, "an unchanged bundle must load"
                assert [p["label"] for p in got] == [p["label"] for p in expected]
                assert np.allclose([p["score"] for p in got], [p["score"] for p in expected])
            return "unchanged"
        assert pinned is None, "a changed bundle loaded against the pinned digest"
        if not resealed:
            assert unpinned is None, "a changed bundle loaded although its manifest was not rewritten"
        return f"changed, resealed={resealed}, predicts={unpinned is not None}"


@given(data=st.data(), resealed=st.booleans())
def test_mutated_bundles_load_only_unchanged(original, data, resealed):
    def mutate(bundle: Path) -> bool:
        for _ in range(data.draw(st.integers(1, 3))):
            data.draw(st.sampled_from(MUTATIONS))(data, bundle)
        if resealed:
            try:
                seal(bundle)
            except (InputError, OSError):  # a folder in the bundle: export never seals one (nor needs to)
                pass
        return resealed

    event(check(original, mutate))


def test_an_untouched_copy_loads(original):
    assert check(original, lambda bundle: False) == "unchanged"
