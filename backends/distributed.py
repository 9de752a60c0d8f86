"""torchrun environment detection, the DDP process group, and reductions and gathers across ranks."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun launch (world of 1 when not launched)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """Read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` as torchrun sets them."""
    return DistEnv(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def init_process_group(env: DistEnv, device: torch.device) -> None:
    """Join the process group: NCCL on CUDA, gloo otherwise. No-op for a world of 1."""
    if not env.is_distributed or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def leave_process_group() -> None:
    """Leave the process group, if one was joined: its gloo/NCCL threads must stop before the
    process exits, or a rank can abort at exit ("terminate called without an active exception")."""
    if _in_process_group():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` across processes (identity outside a process group)."""
    if not _in_process_group():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def all_gather_json(value) -> list:
    """Every rank's JSON-able ``value``, in rank order (``[value]`` outside a process group).

    Sent as UTF-8 bytes in uint8 tensors, so nothing is pickled on the way.
    """
    if not _in_process_group():
        return [value]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    payload = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=device)
    return [json.loads(bytes(part.tolist()).decode()) for part in _all_gather_parts(payload)]


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` from every rank concatenated along dim 0, in rank order (ranks may hold different row
    counts); ``tensor`` itself outside a process group."""
    if not _in_process_group():
        return tensor
    return torch.cat(_all_gather_parts(tensor))


def _in_process_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_gather_parts(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (rows may differ in number): padded to the longest, gathered, trimmed again."""
    size = torch.tensor(tensor.shape[0], dtype=torch.int64, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(sizes))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return [part[: int(n)] for part, n in zip(parts, sizes)]
