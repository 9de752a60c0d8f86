"""The ``torch-compile`` backend: the module compiled by TorchInductor for inference.

Weights are frozen into the graph (Inductor's ``freezing``), which lets it fold
constants and pre-pack weights for the CPU's matrix kernels.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from backends.torch_backend import TorchBackend


class TorchCompileBackend(TorchBackend):
    """torch.compile (Inductor) on the module's device; inference only."""

    name = "torch-compile"
    can_train = False

    def prepare(self, module: nn.Module, example_inputs: Any = None, *, mode: str | None = None) -> "CompiledRunner":
        runner = CompiledRunner(module, mode=mode)
        if example_inputs is not None:  # compile now, not on the first user call
            runner(example_inputs)
        return runner


class CompiledRunner:
    """A compiled module, called without autograd: ``runner(tensor_or_mapping) -> outputs``."""

    def __init__(self, module: nn.Module, mode: str | None = None):
        self.module = module.eval()
        self.compiled = torch.compile(self.module, mode=mode, options=None if mode else {"freezing": True})

    def __call__(self, inputs: Any = None, **keywords: Any) -> Any:
        inputs = keywords or inputs
        with torch.no_grad():  # Inductor's freezing applies under no_grad (inference_mode is not traced the same)
            if isinstance(inputs, Mapping):
                return self.compiled(**inputs)
            return self.compiled(inputs)
