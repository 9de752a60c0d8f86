"""Model folders and their cards, mutated: ``zoo.load``/``zoo.info`` give a model or a ZooError,
``save`` stays in its target.

Two real saved models (the digits CNN and a tiny BERT text classifier with its
tokenizer) are mutated per example: card.json fields deleted, retyped or garbled,
file entries with hostile names and sources, bytes of any file truncated or
flipped (optionally re-pinned in the card so the reader gets past the hash
check), files swapped for symlinks.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zoo
from tests.fuzz import harness
from tests.nlp.helpers import install_in_hf_cache, make_tiny_bert
from zoo.cache import sha256_file
from zoo.errors import ZooError

HOSTILE_NAMES = ["../outside.txt", "/etc/hostname", "sub/x.json", "..", ".", "", "card.json", "weights.safetensors",
                 "tokenizer.json", "a\\b", "x\0y", "~", "x" * 300, "link.json"]
HOSTILE_SOURCES = ["local", "http://127.0.0.1:9/x", "hf://org/repo/x.json", "package://zoo/card.py", "/etc/hostname",
                   "file:///etc/hostname", "../outside.txt", "", None, 3]
FORMATS = ["safetensors", "raw", "torch-pickle", "json", "", None, 1]
EDGE_NUMBERS = [0, -1, 1, 2**31, 2**63, 2**70, float("inf"), float("-inf"), float("nan"), 1e308, 0.5]
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                         st.sampled_from(EDGE_NUMBERS), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The saved digits CNN and tiny BERT folders, built once."""
    digits = zoo.load("vision/digits_cnn.sklearn", device="cpu").save(tmp_path_factory.mktemp("digits") / "model")
    home = tmp_path_factory.mktemp("hf-home")
    install_in_hf_cache(make_tiny_bert(tmp_path_factory.mktemp("bert")), home / "hub", "tiny-org/tiny-bert")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        text = zoo.load("hf:tiny-org/tiny-bert", device="cpu").save(tmp_path_factory.mktemp("text") / "model")
    return {"digits": digits, "text": text}


def one_line(fn):
    """``fn``, whose ZooErrors must be one line (the CLI prints them as such)."""
    def checked(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ZooError as exc:
            assert "\n" not in str(exc), f"a multi-line {type(exc).__name__}: {exc}"
            raise

    return checked


def cli_info(folder: str) -> None:
    """What ``zoo info FOLDER`` and ``zoo info FOLDER --json`` print, rendered and thrown away."""
    from zoo import cli

    with cli.console.capture(), contextlib.redirect_stdout(io.StringIO()):
        cli.info(folder, as_json=False)
        cli.info(folder, as_json=True)


def exercise(folder: Path, root: Path, **load_options):
    """The property: info and load give a result or a one-line ZooError; a loaded model saves only inside its
    target (and a text model predicts)."""
    harness.call("model-folder-info", one_line(zoo.info), str(folder))
    harness.call("model-folder-info-cli", one_line(cli_info), str(folder))
    model = harness.call("model-folder-load", one_line(zoo.load), folder, device="cpu", **load_options)
    if model is not None:
        if model.card.domain == "nlp":  # a text card's preprocessing is checked at load: predict must work too
            harness.call("model-folder-predict", one_line(model.predict), "the movie was great")
        target = root / "saved" / "model"
        before = harness.files_under(root)
        harness.call("model-folder-save", one_line(model.save), target)
        written = harness.files_under(root) - before
        assert all(path == target or target in path.parents or path == target.parent for path in written), written
    return model


def in_scratch(source: Path, mutate, **load_options):
    """Copy ``source`` into a fresh scratch folder, apply ``mutate(folder, root)``, check the property;
    the loaded model or None."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside.txt").write_text("outside")
        folder = root / "model"
        shutil.copytree(source, folder)
        mutate(folder, root)
        return exercise(folder, root, **load_options)


def read_card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


def write_card(folder: Path, card) -> None:
    (folder / "card.json").write_text(json.dumps(card))


card_edits = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(["id", "domain", "task", "architecture", "files", "labels",
                                                  "arch_args", "preprocessing", "input", "schema_version"])),
    st.tuples(st.just("set"), st.sampled_from(["id", "task", "architecture", "arch_args", "labels", "input",
                                               "preprocessing", "metrics", "params", "files", "provenance",
                                               "schema_version", "unknown_field"]), json_values),
    st.tuples(st.just("file"), st.sampled_from(HOSTILE_NAMES), st.sampled_from(HOSTILE_SOURCES),
              st.sampled_from(FORMATS), st.booleans()),
    st.tuples(st.just("file-key"), st.sampled_from(["sha256", "size", "source", "format", "path", "extra"]),
              json_values),
    st.tuples(st.just("tokenizer-files"), st.lists(st.sampled_from(HOSTILE_NAMES), max_size=3)),
    st.tuples(st.just("preprocessing"), st.sampled_from(["tokenizer", "max_length", "pad_token_id", "mean", "std",
                                                         "size", "model_input_names", "strip"]), json_values),
    st.tuples(st.just("arch-arg"), st.text(max_size=12), json_values),
)


def apply_card_edit(folder: Path, card: dict, edit) -> None:
    kind, *args = edit
    if kind == "delete":
        card.pop(args[0], None)
    elif kind == "set":
        card[args[0]] = args[1]
    elif kind == "file" and isinstance(card.get("files"), dict):
        name, source, fmt, pin_outside = args
        pinned = folder.parent / "outside.txt" if pin_outside else folder / "weights.safetensors"
        card["files"][name] = {"sha256": sha256_file(pinned), "size": pinned.stat().st_size, "source": source,
                               "format": fmt}
    elif kind == "file-key" and isinstance(card.get("files"), dict) and card["files"]:
        entry = card["files"][sorted(card["files"])[0]]
        if isinstance(entry, dict):
            entry[args[0]] = args[1]
    elif kind == "tokenizer-files" and isinstance(card.get("preprocessing"), dict):
        card["preprocessing"]["tokenizer_files"] = args[0]
    elif kind == "preprocessing" and isinstance(card.get("preprocessing"), dict):
        card["preprocessing"][args[0]] = args[1]
    elif kind == "arch-arg" and isinstance(card.get("arch_args"), dict):
        card["arch_args"][args[0]] = args[1]


@given(model=st.sampled_from(["digits", "text"]), edits=st.lists(card_edits, min_size=1, max_size=4),
       load_options=st.sampled_from([{}, {"pretrained": False}, {"num_classes": 3}]))
def test_mutated_cards(folders, model, edits, load_options):
    def mutate(folder, root):
        card = read_card(folder)
        for edit in edits:
            apply_card_edit(folder, card, edit)
        write_card(folder, card)

    in_scratch(folders[model], mutate, **load_options)


byte_edits = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("header-length"), st.integers(0, 2**64 - 1)),
)


def apply_byte_edit(data: bytes, edit) -> bytes:
    kind, *args = edit
    at = int(args[0] * len(data)) if kind != "header-length" else 0
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ args[1]]) + data[at + 1:] if data else data
    if kind == "insert":
        return data[:at] + args[1] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + args[1]:]
    return args[0].to_bytes(8, "little") + data[8:]


@given(model=st.sampled_from(["digits", "text"]),
       file=st.sampled_from(["weights.safetensors", "tokenizer.json", "card.json"]),
       edits=st.lists(byte_edits, min_size=1, max_size=3), repin=st.booleans())
def test_corrupted_files(folders, model, file, edits, repin):
    def mutate(folder, root):
        path = folder / file
        if not path.is_file():
            return
        data = path.read_bytes()
        for edit in edits:
            data = apply_byte_edit(data, edit)
        path.write_bytes(data)
        if repin and file != "card.json":  # past the hash check: the reader itself meets the bytes
            card = read_card(folder)
            card["files"][file].update(sha256=sha256_file(path), size=path.stat().st_size)
            write_card(folder, card)

    in_scratch(folders[model], mutate)


@given(model=st.sampled_from(["digits", "text"]),
       file=st.sampled_from(["weights.safetensors", "tokenizer.json", "card.json"]),
       target=st.sampled_from(["outside", "outside-copy", "inside", "dangling", "folder", "loop", "self-dir"]))
def test_symlinked_files(folders, model, file, target):
    def mutate(folder, root):
        path = folder / file
        if not path.exists():
            return
        copy = root / f"outside-{file}"
        shutil.copyfile(path, copy)
        path.unlink()
        link_to = {"outside": root / "outside.txt", "outside-copy": copy, "inside": folder / f"real-{file}",
                   "dangling": root / "missing", "folder": root, "loop": path, "self-dir": folder}[target]
        if target == "inside":
            shutil.copyfile(copy, link_to)
        path.symlink_to(link_to)

    loaded = in_scratch(folders[model], mutate)
    linked = (folders[model] / file).exists()
    assert loaded is None or target == "inside" or not linked, f"loaded through a {target} symlink"
