"""The ``torch-compile`` backend: the module compiled by TorchInductor for inference.

Weights are frozen into the graph (Inductor's ``freezing``): batch norms fold into
the convolutions before them and weights are pre-packed for the CPU's oneDNN kernels.
"""
from __future__ import annotations

from contextlib import nullcontext
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
    """A compiled module, called without autograd: ``runner(tensor_or_mapping) -> outputs`` (or several tensors,
    as the module takes them)."""

    def __init__(self, module: nn.Module, mode: str | None = None):
        self.module = module.eval()
        self.compiled = torch.compile(self.module, mode=mode)
        self.seen_layouts: set[tuple] = set()

    def __call__(self, *args: Any, **keywords: Any) -> Any:
        """``runner(tensor)``, ``runner(mapping)`` / ``runner(**tensors)`` (keywords), or ``runner(a, b)`` (positional)."""
        inputs = keywords or (args[0] if len(args) == 1 else args)
        # Freezing is set around calls that may compile, not passed as torch.compile(options=...):
        # Dynamo reads the global Inductor config when it traces to decide that parameters are
        # constants; through `options` only Inductor saw it, so nothing was folded or pre-packed.
        # A call can only trace on an input layout not seen before; the patch costs about as
        # much as a small policy's whole forward, so the other calls go without it.
        layout = input_layout(inputs)
        may_compile = layout not in self.seen_layouts
        with torch.no_grad(), torch._inductor.config.patch(freezing=True) if may_compile else nullcontext():
            if isinstance(inputs, Mapping):
                outputs = self.compiled(**inputs)
            else:
                outputs = self.compiled(*inputs) if isinstance(inputs, tuple) else self.compiled(inputs)
        self.seen_layouts.add(layout)
        return outputs


def input_layout(inputs: Any) -> tuple:
    """What Dynamo's guards check of the inputs: shapes, strides, dtypes and devices."""
    if isinstance(inputs, Mapping):
        return tuple((key, input_layout(value)) for key, value in sorted(inputs.items()))
    if isinstance(inputs, torch.Tensor):
        return (tuple(inputs.shape), inputs.stride(), inputs.dtype, inputs.device)
    if isinstance(inputs, (list, tuple)):
        return tuple(input_layout(value) for value in inputs)
    if inputs is None or isinstance(inputs, (bool, int, float, str)):
        return (type(inputs), inputs)
    return (type(inputs), id(inputs))  # anything else: taken as new each time, so always frozen if it compiles
