"""Fuzz the readers of the zoo's own on-disk state: checkpoint folders and the weights cache.

Checkpoints: one tiny run is trained once; each example copies it, garbles
trainer.json (retyped, deleted or changed fields), flips/truncates bytes of any
file or turns a file into a directory, then resumes. Unsealed edits must be
refused (CheckpointError); edits resealed into the manifest reach the typed checks
and must resume or raise a ZooError. Cache: each example copies a populated store,
garbles its records (verified/, converted/, index.json) or blobs, then fetches,
lists and verifies; each must return or raise a ZooError.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from tests.fuzz import harness
from tests.zoo.test_train import Blobs, mlp, reseal
from zoo import cache
from zoo.checkpoint import list_checkpoints, load_checkpoint
from zoo.registry import WeightFile
from zoo.train import TrainConfig, Trainer

CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json", "manifest.json")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


# -- mutations of real files ------------------------------------------------------------------
def json_paths(value, prefix=()) -> list[tuple]:
    """Every key path into a JSON tree (dict keys and list indices), the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    paths = []
    for key, child in items:
        paths.append((*prefix, key))
        paths.extend(json_paths(child, (*prefix, key)))
    return paths


@st.composite
def json_edits(draw, document):
    """A copy of ``document`` with one field deleted, retyped or its number changed."""
    data = json.loads(json.dumps(document))
    paths = json_paths(data)
    path = draw(st.sampled_from(paths))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    action = draw(st.sampled_from(["delete", "retype", "number"]))
    if action == "delete":
        del parent[key]
    elif action == "number" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = old + draw(st.sampled_from([-1, 1, -(2**40), 2**40, 0.5])) if math.isfinite(old) else 0
    else:
        parent[key] = draw(json_values)
    return data


@st.composite
def byte_edits(draw, data: bytes):
    """``data`` truncated, with a byte flipped, or with bytes inserted/deleted."""
    if not data:
        return draw(st.binary(min_size=1, max_size=8))
    action = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    at = draw(st.integers(0, len(data) - 1))
    if action == "truncate":
        return data[:at]
    if action == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    if action == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data[:at] + data[at + draw(st.integers(1, 8)):]


def replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_bytes(b"{}")


@contextmanager
def scratch_copy(template: Path):
    """A throwaway copy of ``template`` (and a sibling folder to check nothing is written next to it)."""
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as parent:
        copy = Path(parent) / "target"
        shutil.copytree(template, copy, symlinks=True)
        before_outside = harness.files_under(Path(parent)) - harness.files_under(copy)
        yield copy
        after_outside = harness.files_under(Path(parent)) - harness.files_under(copy)
        assert after_outside == before_outside, f"written outside {copy}: {after_outside - before_outside}"


# -- checkpoint folders -------------------------------------------------------------------------
def _trainer(out_dir: Path) -> Trainer:
    torch.set_num_threads(1)
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-2, progress=False, device="cpu", log_every_steps=1)
    return Trainer(mlp(dropout=0.0), Blobs(32), Blobs(16, seed=1), config=config, out_dir=out_dir)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished 2-step run (its checkpoint holds the end of epoch 0)."""
    out = tmp_path_factory.mktemp("run") / "run"
    _trainer(out).fit()
    return out


def _resume(run: Path):
    checkpoint = list_checkpoints(run)[-1]
    load_checkpoint(checkpoint)
    return _trainer(run).fit(resume=True)


def _checkpoint_document(run: Path) -> dict:
    return json.loads((list_checkpoints(run)[-1] / "trainer.json").read_text())


@given(data=st.data())
def test_checkpoint_with_edited_trainer_json(trained_run, data):
    edited = data.draw(json_edits(_checkpoint_document(trained_run)))
    sealed = data.draw(st.booleans())
    with scratch_copy(trained_run) as run:
        checkpoint = list_checkpoints(run)[-1]
        original = (checkpoint / "trainer.json").read_bytes()
        (checkpoint / "trainer.json").write_text(json.dumps(edited, indent=1))
        changed = (checkpoint / "trainer.json").read_bytes() != original
        if sealed:
            reseal(checkpoint)
        result = harness.call("checkpoint-trainer-json", _resume, run)
        if changed and not sealed:
            assert result is None, "an unsealed edit of trainer.json was resumed"


@given(data=st.data(), name=st.sampled_from(CHECKPOINT_FILES + ("latest",)))
def test_checkpoint_with_damaged_file(trained_run, data, name):
    with scratch_copy(trained_run) as run:
        path = list_checkpoints(run)[-1] / name if name != "latest" else run / "checkpoints" / "latest"
        original = path.read_bytes()
        if data.draw(st.booleans(), label="directory instead"):
            replace_with_directory(path)
        else:
            path.write_bytes(data.draw(byte_edits(original)))
        result = harness.call("checkpoint-files", _resume, run)
        if path.is_dir() and name != "latest":
            assert result is None, f"a checkpoint whose {name} is a directory was resumed"


# -- the weights cache ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def populated_store(tmp_path_factory):
    """A store holding a safetensors blob and a legacy pickle converted once; the sources beside it."""
    root = tmp_path_factory.mktemp("store")
    sources = root / "sources"
    sources.mkdir()
    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(sources / "w.safetensors"))
    torch.save({"layer.weight": torch.ones(2, 2)}, sources / "legacy.pth")
    files = [
        WeightFile("w.safetensors", cache.sha256_file(sources / "w.safetensors"), str(sources / "w.safetensors")),
        WeightFile("legacy.pth", cache.sha256_file(sources / "legacy.pth"), str(sources / "legacy.pth"),
                   format="torch-pickle"),
    ]
    home = root / "home"
    with zoo_home(home):
        for wf in files:
            cache.fetch(wf, model_id="test/fuzz")
    return home, sources, files


@contextmanager
def zoo_home(path: Path):
    previous = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(path)
    try:
        yield
    finally:
        os.environ["ZOO_HOME"] = previous


def _records(home: Path) -> list[Path]:
    return sorted([*home.glob("verified/*.json"), *home.glob("converted/*.json"), home / "index.json"])


def _use_store(files: list[WeightFile]):
    for wf in files:
        harness.call("cache-fetch", cache.fetch, wf, model_id="test/fuzz")
    harness.call("cache-list", cache.list_entries)
    harness.call("cache-verify", cache.verify)
    for wf in files:  # whatever verify moved aside, a second fetch gets the right bytes back
        path = harness.call("cache-fetch", cache.fetch, wf, model_id="test/fuzz")
        if path is not None and wf.format != "torch-pickle":
            assert hashlib.sha256(path.read_bytes()).hexdigest() == wf.sha256


def _check_sources_untouched(sources: Path, before: dict[str, bytes]) -> None:
    assert {p.name: p.read_bytes() for p in sources.iterdir()} == before


@given(data=st.data())
def test_cache_with_garbled_records(populated_store, data):
    template, sources, files = populated_store
    before = {p.name: p.read_bytes() for p in sources.iterdir()}
    with scratch_copy(template) as home, zoo_home(home):
        record = data.draw(st.sampled_from(_records(home)))
        content = record.read_bytes()
        how = data.draw(st.sampled_from(["json", "bytes", "directory"]))
        if how == "json":
            record.write_text(json.dumps(data.draw(json_edits(json.loads(content)))))
        elif how == "bytes":
            record.write_bytes(data.draw(byte_edits(content)))
        else:
            replace_with_directory(record)
        _use_store(files)
    _check_sources_untouched(sources, before)


@given(data=st.data())
def test_cache_with_damaged_blobs(populated_store, data):
    template, sources, files = populated_store
    before = {p.name: p.read_bytes() for p in sources.iterdir()}
    with scratch_copy(template) as home, zoo_home(home):
        blob = data.draw(st.sampled_from(sorted((home / "blobs" / "sha256").iterdir())))
        how = data.draw(st.sampled_from(["bytes", "directory", "symlink", "fifo"]))
        if how == "bytes":
            blob.write_bytes(data.draw(byte_edits(blob.read_bytes())))
        elif how == "directory":
            replace_with_directory(blob)
        elif how == "symlink":
            blob.unlink()
            blob.symlink_to(sources / "w.safetensors")
        else:
            blob.unlink()
            os.mkfifo(blob)
        _use_store(files)
    _check_sources_untouched(sources, before)
