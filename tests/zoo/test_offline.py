"""``ZOO_OFFLINE=1`` opens no socket on the registry's weights path, and a machine without DNS is reported as
such at once. The pass-through and dataset-download paths are tested with their domains (test_offline.py of each)."""
from tests.offline import assert_reported_unreachable, run_cases, user_env

# The toy domain as the only one, and a model of it whose weights are on the Hugging Face Hub.
TOY_WITH_REMOTE_WEIGHTS = """
    import tempfile
    from pathlib import Path

    import zoo
    from tests.zoo import toy
    from zoo import registry as registry_module
    from zoo.registry import ModelSpec, WeightFile

    registry = registry_module._registry = toy.toy_registry(Path(tempfile.mkdtemp(prefix="toy-weights-")))
    local = registry.model(toy.MODEL_ID)
    remote = ModelSpec(id="toy/mlp.hf_remote", task=local.task, architecture=local.architecture,
                       arch_args=dict(local.arch_args),
                       weights=(WeightFile("weights.safetensors", "0" * 64, "hf://org/repo/weights.safetensors"),),
                       card=dict(local.card))
    registry.models[remote.id] = remote
    cases = {
        "registry local weights": lambda: zoo.load(toy.MODEL_ID).predict([[0.0] * toy.IN_FEATURES])[0]["label"],
        "registry hf:// weights": lambda: zoo.load(remote.id),
    }
"""


def test_zoo_offline_opens_no_socket_on_the_registry_weights_path(tmp_path):
    results = run_cases(TOY_WITH_REMOTE_WEIGHTS, user_env(tmp_path))
    assert {name: r["sockets"] for name, r in results.items() if r["sockets"]} == {}
    assert results["registry local weights"]["outcome"].startswith("ok")
    assert results["registry hf:// weights"]["outcome"].startswith("OfflineError: "), results


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


def test_no_network_is_reported_as_such_at_once(tmp_path):
    """Without DNS (ZOO_OFFLINE not set) local weights load and remote ones fail after one lookup, saying why."""
    results = run_cases(TOY_WITH_REMOTE_WEIGHTS, user_env(tmp_path, zoo_offline=False), no_dns=True)
    assert results["registry local weights"]["outcome"].startswith("ok"), results
    assert_reported_unreachable(results["registry hf:// weights"]["outcome"])
    # At once: one failed name lookup answers for the whole process; nothing retries a dead network.
    assert sum(len(r["sockets"]) for r in results.values()) == 1, results
