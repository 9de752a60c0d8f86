"""The ``torch`` backend: eager PyTorch, the only one that trains."""
from __future__ import annotations

from typing import Any

import torch

from backends.device import best_device


class TorchBackend:
    """Eager execution on the best local device."""

    name = "torch"
    can_train = True

    def devices(self) -> list[str]:
        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append("mps")
        return found

    def default_device(self) -> torch.device:
        return best_device()

    def prepare(self, module: torch.nn.Module, example_inputs: Any = None) -> "EagerRunner":
        return EagerRunner(module)


class EagerRunner:
    """Runs a module in eval mode without autograd."""

    def __init__(self, module: torch.nn.Module):
        self.module = module.eval()

    def __call__(self, inputs: Any) -> Any:
        with torch.inference_mode():
            return self.module(inputs)
