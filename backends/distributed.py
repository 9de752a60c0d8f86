"""torchrun environment detection and the DDP process group."""
from __future__ import annotations

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


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` across processes (identity outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()
