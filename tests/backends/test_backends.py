import json
import random

import numpy as np
import pytest
import torch

import backends
from backends.device import resolve_device
from backends.distributed import dist_env
from backends.precision import autocast, check_precision
from backends.seed import rng_state, rng_state_from_json, rng_state_to_json, seed_everything, set_rng_state
from backends.state import load_state, read_metadata, save_state


def test_registry_gets_torch_and_names_unknown_ones():
    torch_backend = backends.get("torch")
    assert torch_backend.can_train and "cpu" in torch_backend.devices()
    assert "torch" in backends.available()
    with pytest.raises(KeyError, match="known backends: .*torch"):
        backends.get("no-such-backend")


def test_third_party_backend_registers_by_path():
    backends.register("eager-copy", "backends.torch_backend:TorchBackend")
    try:
        assert backends.get("eager-copy").name == "torch"
        assert "eager-copy" in backends.names()
    finally:
        backends._registered.pop("eager-copy")


def test_torch_runner_runs_without_autograd():
    net = torch.nn.Linear(3, 2)
    out = backends.get("torch").prepare(net)(torch.ones(1, 3))
    assert out.shape == (1, 2) and not out.requires_grad and not net.training


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (expected, "mps")


def test_bf16_autocast_changes_matmul_dtype_and_fp32_does_not():
    a = torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert (a @ a).dtype == torch.float32
    with pytest.raises(ValueError, match="fp32"):
        check_precision("int8")


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_rng_state_round_trip_continues_identically():
    seed_everything(3)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])


def test_rng_state_survives_json_as_sent_between_ranks():
    seed_everything(4)
    encoded = json.loads(json.dumps(rng_state_to_json(rng_state())))
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(rng_state_from_json(encoded))
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])


def test_safetensors_state_round_trip_and_metadata(tmp_path):
    shared = torch.arange(6.0)
    state = {"a": shared, "b": shared.view(2, 3).t()}  # shared storage, non-contiguous
    path = tmp_path / "w.safetensors"
    save_state(state, path, metadata={"k": "v"})
    loaded = load_state(path)
    assert torch.equal(loaded["a"], state["a"]) and torch.equal(loaded["b"], state["b"])
    assert read_metadata(path) == {"k": "v"}
    assert not list(tmp_path.glob("*.tmp"))


def test_dist_env_reads_torchrun_variables(monkeypatch):
    assert dist_env().world_size == 1 and dist_env().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    env = dist_env()
    assert (env.rank, env.local_rank, env.world_size, env.is_distributed, env.is_main) == (3, 1, 4, True, False)


def _gather_on_rank(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    from backends.distributed import all_gather_json, all_gather_rows

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        rows = all_gather_rows(torch.full((rank + 1, 2), float(rank)))  # ranks hold 1 and 2 rows
        values = all_gather_json({"rank": rank, "text": "é" * (rank + 3)})
    finally:
        dist.destroy_process_group()
    if rank == 0:
        with open(results, "w") as f:
            json.dump({"rows": rows.tolist(), "values": values}, f)


def test_gathers_across_ranks_keep_rank_order_and_uneven_sizes(tmp_path):
    import torch.multiprocessing as mp

    from backends.distributed import all_gather_json, all_gather_rows

    single = torch.ones(3, 2)
    assert all_gather_rows(single) is single and all_gather_json([1]) == [[1]]  # no process group: identity
    results = tmp_path / "results.json"
    mp.spawn(_gather_on_rank, args=(str(tmp_path / "init"), str(results)), nprocs=2)
    gathered = json.loads(results.read_text())
    assert gathered["rows"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert gathered["values"] == [{"rank": 0, "text": "ééé"}, {"rank": 1, "text": "éééé"}]
