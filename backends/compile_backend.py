"""The ``torch-compile`` backend: the module compiled by TorchInductor for inference.

Weights are frozen into the graph (Inductor's ``freezing``): batch norms fold into
the convolutions before them and weights are pre-packed for the CPU's oneDNN kernels.
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
        self.compiled = torch.compile(self.module, mode=mode)

    def __call__(self, inputs: Any = None, **keywords: Any) -> Any:
        inputs = keywords or inputs
        # Freezing is set around every call, not passed as torch.compile(options=...):
        # Dynamo reads the global Inductor config when it traces (on the first call and
        # on any recompile) to decide that parameters are constants; through `options`
        # only Inductor saw it, so nothing was folded or pre-packed. Inductor's freezing
        # applies under no_grad (inference_mode is not traced the same).
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            if isinstance(inputs, Mapping):
                return self.compiled(**inputs)
            return self.compiled(inputs)
