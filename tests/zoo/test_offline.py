"""``ZOO_OFFLINE=1`` opens no socket at all, on every path: hf:, timm:, torchvision:, registry weights, datasets.

Run in a fresh interpreter with ``HF_HUB_OFFLINE`` unset (tests/conftest.py sets it for every test, which
hides the bug): an audit hook there records, and blocks, every connection and name lookup.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.nlp.helpers import install_in_hf_cache, make_tiny_bert

SCRIPT = textwrap.dedent('''
    import json, sys

    opened = []

    def block_sockets(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            opened.append(f"{event}{args!r}")
            raise RuntimeError("socket blocked by the test")

    sys.addaudithook(block_sockets)

    import zoo
    from zoo.registry import ModelSpec, WeightFile, get_registry

    registry = get_registry()
    remote = ModelSpec(id="vision/digits_cnn.hf_remote", task="image-classification", architecture="digits_cnn",
                       arch_args={"num_classes": 10, "in_chans": 1, "widths": [16, 32, 64]},
                       weights=(WeightFile("weights.safetensors", "0" * 64, "hf://org/repo/weights.safetensors"),),
                       card=dict(registry.model("vision/digits_cnn.sklearn").card))
    registry.models[remote.id] = remote

    def hf_cached():
        return zoo.load("hf:tiny-org/tiny-bert", device="cpu").predict("the movie was great")["label"]

    def fashion_mnist():
        from vision.datasets import fashion_mnist
        return fashion_mnist()

    def medmnist():
        from medical.datasets import MEDMNIST_MD5, fetch_medmnist
        return fetch_medmnist(sorted(MEDMNIST_MD5)[0])

    cases = {
        "hf: cached": hf_cached,
        "hf: not cached": lambda: zoo.load("hf:nobody/missing-model"),
        "hf: info": lambda: zoo.info("hf:tiny-org/tiny-bert"),
        "timm:": lambda: zoo.load("timm:resnet18.a1_in1k"),
        "torchvision:": lambda: zoo.load("torchvision:resnet18"),
        "registry hf:// weights": lambda: zoo.load(remote.id),
        "fashion-mnist": fashion_mnist,
        "medmnist": medmnist,
    }
    results = {}
    for name, case in cases.items():
        before = len(opened)
        # huggingface_hub looks its agent registry up once per process: each case must meet that lookup.
        from huggingface_hub.utils import _detect_agent
        _detect_agent._registry = None
        try:
            outcome = f"ok {case()!r:.40}"
        except Exception as exc:
            outcome = type(exc).__name__
        results[name] = {"outcome": outcome, "sockets": opened[before:]}
    print(json.dumps(results))
''')


@pytest.fixture
def offline_env(tmp_path):
    """The environment of a user with ``ZOO_OFFLINE=1`` only, and a tiny BERT in their HF cache."""
    install_in_hf_cache(make_tiny_bert(tmp_path / "tiny-bert"), tmp_path / "hf" / "hub", "tiny-org/tiny-bert")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(ZOO_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), ZOO_HOME=str(tmp_path / "zoo"),
               TORCH_HOME=str(tmp_path / "torch"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    return env


def test_zoo_offline_opens_no_socket_on_any_path(offline_env):
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=offline_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert {name: r["sockets"] for name, r in results.items() if r["sockets"]} == {}
    assert results["hf: cached"]["outcome"].startswith("ok")
    assert results["hf: info"]["outcome"].startswith("ok")
    for name in ("hf: not cached", "timm:", "torchvision:", "registry hf:// weights"):
        assert results[name]["outcome"] == "OfflineError", (name, results[name])
    for name in ("fashion-mnist", "medmnist"):  # found on this machine, or not and then offline
        assert results[name]["outcome"] == "OfflineError" or results[name]["outcome"].startswith("ok"), results[name]


def test_hf_offline_switches_huggingface_hub_offline_only_inside(monkeypatch):
    from huggingface_hub import constants

    from zoo import cache, sources
    from zoo.cache import hf_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with hf_offline():
        with hf_offline():  # another load at the same time: leaving it keeps the outer one offline
            assert constants.is_offline_mode()
        assert constants.is_offline_mode()
    assert not constants.is_offline_mode()
    monkeypatch.delenv("ZOO_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(sources, "_resolve_failure", lambda host: None)  # the Hub resolves
    with hf_offline():
        assert not constants.is_offline_mode()
    monkeypatch.setattr(sources, "_resolve_failure", lambda host: f"{host} cannot be resolved (no network)")
    with hf_offline():  # no network: cache only, at once, instead of retrying a dead connection
        assert constants.is_offline_mode()
    assert not constants.is_offline_mode()
    assert cache.offline_reason().startswith("the network is unreachable (huggingface.co cannot be resolved")


UNREACHABLE = textwrap.dedent('''
    import json, socket, sys, time

    def no_network(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    socket.getaddrinfo = no_network  # a machine without DNS, as the user's was

    import zoo
    from zoo.registry import ModelSpec, WeightFile, get_registry

    remote = ModelSpec(id="vision/digits_cnn.hf_remote", task="image-classification", architecture="digits_cnn",
                       arch_args={"num_classes": 10, "in_chans": 1, "widths": [16, 32, 64]},
                       weights=(WeightFile("weights.safetensors", "0" * 64, "hf://org/repo/weights.safetensors"),),
                       card=dict(get_registry().model("vision/digits_cnn.sklearn").card))
    get_registry().models[remote.id] = remote
    cases = {
        "hf: cached": lambda: zoo.load("hf:tiny-org/tiny-bert", device="cpu").predict("great")["label"],
        "hf: not cached": lambda: zoo.load("hf:nobody/missing-model"),
        "registry hf:// weights": lambda: zoo.load(remote.id),
    }
    results = {}
    for name, case in cases.items():
        start = time.perf_counter()
        try:
            outcome = f"ok {case()!r:.40}"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        results[name] = {"outcome": outcome, "seconds": time.perf_counter() - start}
    print(json.dumps(results))
''')


def test_no_network_is_reported_as_such_at_once(offline_env):
    """Without DNS (ZOO_OFFLINE not set) a cached model loads and a missing one fails in seconds, saying why."""
    env = {k: v for k, v in offline_env.items() if k != "ZOO_OFFLINE"}
    run = subprocess.run([sys.executable, "-c", UNREACHABLE], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results["hf: cached"]["outcome"].startswith("ok"), results
    for name in ("hf: not cached", "registry hf:// weights"):
        outcome = results[name]["outcome"]
        assert outcome.startswith("OfflineError: "), (name, outcome)
        assert "the network is unreachable (huggingface.co cannot be resolved" in outcome, outcome
        assert "ZOO_OFFLINE is set" not in outcome and "ZOO_OFFLINE=1" in outcome, outcome
    assert all(r["seconds"] < 10 for r in results.values()), results
