"""The restricted unpickler of Lightning checkpoints (zoo/conversions.py, ``format="lightning-pickle"``):
tensors and plain data out, no code run, through the store once."""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open

from zoo import cache
from zoo.conversions import PickledRecord, plain, read_lightning_checkpoint
from zoo.errors import InputError, UnsafeFormatError
from zoo.registry import WeightFile


class RunsAShell:
    """What a malicious checkpoint carries: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Scaler:
    """A class of the checkpoint's own library (like Chemprop's UnscaleTransform), unknown to the reader."""

    def __init__(self):
        self.mean, self.scale = [1.5], [2.0]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lightning_checkpoint(path, extra=None):
    """A Lightning-style checkpoint as ``torch.save`` writes it: state dict, hyper-parameters with objects."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    state = collections.OrderedDict(net.state_dict())
    state["0.weight_t"] = state["0.weight"].t()  # a strided view: rebuilt by stride and offset
    checkpoint = {"state_dict": state, "parameter": torch.nn.Parameter(torch.ones(2)), "hyper_parameters": {"depth": 3, "scaler": Scaler(), "tags": {"a"}},
                  "output_columns": ["logS", "logP"], **(extra or {})}
    torch.save(checkpoint, path)
    return state


def test_a_real_lightning_style_checkpoint_gives_its_tensors_and_plain_hyper_parameters(tmp_path):
    state = lightning_checkpoint(tmp_path / "model.pt")
    checkpoint = read_lightning_checkpoint(tmp_path / "model.pt")
    assert list(checkpoint["state_dict"]) == list(state)
    for key, tensor in state.items():
        assert torch.equal(checkpoint["state_dict"][key], tensor) and checkpoint["state_dict"][key].is_contiguous()
    assert type(checkpoint["parameter"]) is torch.Tensor and torch.equal(checkpoint["parameter"], torch.ones(2))
    scaler = checkpoint["hyper_parameters"]["scaler"]
    assert isinstance(scaler, PickledRecord) and not isinstance(scaler, Scaler)
    assert plain(checkpoint["hyper_parameters"]) == {
        "depth": 3, "tags": ["a"], "scaler": {"class": f"{__name__}.Scaler", "state": {"mean": [1.5], "scale": [2.0]}}}


def test_a_malicious_reduce_is_recorded_never_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": RunsAShell(marker)}, tmp_path / "evil.pt")
    checkpoint = read_lightning_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    assert plain(checkpoint["payload"]) == {"class": "posix.system", "args": [f"touch {marker}"]}


def test_the_store_converts_a_checkpoint_once_keeping_metadata_and_running_nothing(tmp_path, isolated_zoo_home):
    marker = tmp_path / "pwned"
    state = lightning_checkpoint(tmp_path / "model.pt", extra={"payload": RunsAShell(marker)})
    wf = WeightFile("model.pt", sha(tmp_path / "model.pt"), str(tmp_path / "model.pt"), format="lightning-pickle")
    converted = cache.fetch(wf)
    assert not marker.exists() and cache.fetch(wf) == converted
    with safe_open(str(converted), "pt") as f:
        assert sorted(f.keys()) == sorted(state)
        assert torch.equal(f.get_tensor("2.bias"), state["2.bias"])
        metadata = f.metadata()
    assert json.loads(metadata["zoo.lightning.output_columns"]) == ["logS", "logP"]
    assert json.loads(metadata["zoo.lightning.hyper_parameters"])["depth"] == 3


def test_a_bare_pickle_or_a_checkpoint_without_tensors_is_refused(tmp_path, isolated_zoo_home):
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps({"state_dict": {}}))
    with pytest.raises(UnsafeFormatError, match="expected a torch.save zip archive"):
        cache.fetch(WeightFile("bare.pkl", sha(bare), str(bare), format="lightning-pickle"))
    torch.save({"state_dict": {"w": "not a tensor"}}, tmp_path / "strings.pt")
    with pytest.raises(InputError, match="'state_dict' to hold tensors"):
        cache.fetch(WeightFile("strings.pt", sha(tmp_path / "strings.pt"), str(tmp_path / "strings.pt"),
                               format="lightning-pickle"))


def test_a_truncated_archive_is_an_input_error(tmp_path):
    lightning_checkpoint(tmp_path / "model.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "model.pt").read_bytes()[:400])
    with pytest.raises(InputError, match="cut.pt is not a readable torch.save checkpoint"):
        read_lightning_checkpoint(cut)
