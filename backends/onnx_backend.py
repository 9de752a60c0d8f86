"""The ``onnxruntime`` backend: a module exported to ONNX and run by ONNX Runtime.

Inputs are one tensor (named ``input``) or a mapping of named tensors (passed to
the module as keywords, e.g. a tokenizer's ``input_ids``/``attention_mask``, or a
recurrent policy's ``input`` and ``state``). Outputs are one tensor (``output``) or
several (a recurrent policy's action and ``next_state``). The batch dimension is
dynamic; so is the second dimension of 2-D integer inputs (token sequences). ONNX
Runtime takes the CUDA execution provider when present.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn


class ExportError(RuntimeError):
    """A module that the ONNX exporter cannot convert."""


class OnnxRuntimeBackend:
    """Inference through ONNX Runtime (CPU, or CUDA where its provider is installed)."""

    name = "onnxruntime"
    can_train = False

    def __init__(self):
        import onnxruntime  # noqa: F401 -- raises ImportError where the backend is not installed

    def devices(self) -> list[str]:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        return ["cpu"] + (["cuda"] if "CUDAExecutionProvider" in providers else [])

    def prepare(self, module: nn.Module, example_inputs: Any = None, *, path: str | os.PathLike | None = None,
                device: str = "cpu") -> "OnnxRunner":
        """Export ``module`` (traced on ``example_inputs``) to ``path`` and open a session. Without a path the
        graph goes to a temporary folder, removed once the session holds it (each conversion would leave one)."""
        if example_inputs is None:
            raise ExportError("the onnxruntime backend needs example inputs to export the module")
        if path is not None:
            export_onnx(module, example_inputs, path)
            return OnnxRunner(path, device=device)
        with tempfile.TemporaryDirectory(prefix="zoo-onnx-") as folder:
            export_onnx(module, example_inputs, Path(folder) / "model.onnx")
            return OnnxRunner(Path(folder) / "model.onnx", device=device)


class _Keywords(nn.Module):
    """Positional tensors → the wrapped module's keyword arguments (ONNX graphs take positional inputs)."""

    def __init__(self, module: nn.Module, names: list[str]):
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *tensors):
        return self.module(**dict(zip(self.names, tensors)))


def input_names(example_inputs: Any) -> list[str]:
    return list(example_inputs) if isinstance(example_inputs, Mapping) else ["input"]


def dynamic_axes(tensor: torch.Tensor) -> tuple[int, ...]:
    """The dimensions left dynamic in the graph: the batch, and the length of token sequences."""
    return (0, 1) if tensor.ndim == 2 and not tensor.is_floating_point() else (0,)


def _dynamic_dims(tensor: torch.Tensor, axes: tuple[int, ...] | None) -> dict[int, Any]:
    return {axis: torch.export.Dim.DYNAMIC for axis in (dynamic_axes(tensor) if axes is None else axes)}


def export_onnx(module: nn.Module, example_inputs: Any, path: str | os.PathLike, *,
                axes: tuple[int, ...] | None = None, traced: bool = False,
                output_names: tuple[str, ...] = ("output",)) -> Path:
    """Write ``module`` as a self-contained ONNX file (weights inside) with dynamic batch size.

    ``output_names`` names the graph's outputs in the order the module returns them.

    ``axes`` names the dynamic dimensions of every input instead (a segmenter's height and width too).
    ``traced``: through the TorchScript tracer instead of torch.export (a detector with dynamic height and width
    exports in seconds there, in many minutes through torch.export's symbolic shapes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = input_names(example_inputs)
    tensors = tuple(example_inputs.values()) if isinstance(example_inputs, Mapping) else (example_inputs,)
    dims = tuple(_dynamic_dims(t, axes) for t in tensors)
    if isinstance(example_inputs, Mapping):
        wrapped, dynamic_shapes = _Keywords(module, names), {"tensors": dims}  # one *args parameter
    else:
        wrapped, dynamic_shapes = module, dims
    wrapped.eval()
    if traced:
        return _export_traced(module, tensors[0], path, axes or (0,))
    try:
        program = torch.onnx.export(wrapped, tensors, dynamo=True, input_names=names, output_names=list(output_names),
                                    dynamic_shapes=dynamic_shapes, verbose=False)
    except Exception as e:  # torch.export raises many kinds; all mean "this graph cannot be exported"
        cause = e.__cause__ or e
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise ExportError(f"{type(module).__name__} cannot be exported to ONNX: {type(cause).__name__}: {reason}") from e
    tmp = path.with_name(path.name + ".tmp")
    program.save(str(tmp), external_data=False)
    os.replace(tmp, path)
    return path


def _export_traced(module: nn.Module, example: torch.Tensor, path: Path, axes: tuple[int, ...]) -> Path:
    """One tensor in, one out, through the TorchScript tracer; the output's first two dimensions dynamic."""
    import warnings

    tmp = path.with_name(path.name + ".tmp")
    try:
        with warnings.catch_warnings():  # the tracer's deprecation and "converting a tensor to a Python int" notes
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["output"], opset_version=17,
                              dynamic_axes={"input": {a: f"input_{a}" for a in axes},
                                            "output": {0: "output_0", 1: "output_1"}})
    except Exception as e:  # the tracer raises many kinds; all mean "this graph cannot be exported"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ExportError(f"{type(module).__name__} cannot be exported to ONNX: {type(e).__name__}: {reason}") from e
    os.replace(tmp, path)
    return path


class OnnxRunner:
    """An ONNX Runtime session called like the module: ``runner(tensor_or_mapping) -> tensor``, or
    ``runner(a, b) -> (x, y)`` for a graph of several inputs and outputs (a recurrent policy's step)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 output: str | None = None):
        """``threads``: ONNX Runtime's intra-op threads (None: its default, one per core); ``output``: the one graph
        output returned (a translator's encoder has several); None: all of them, a tuple where there are several."""
        import onnxruntime

        self.path = Path(path)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=providers)
        self.names = [i.name for i in self.session.get_inputs()]
        self.output = output

    def __call__(self, *args: Any, **keywords: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if keywords or (len(args) == 1 and isinstance(args[0], Mapping)):
            inputs = keywords or args[0]
        else:  # positional, in the graph's input order
            inputs = dict(zip(self.names, args))
        feed = {name: _numpy(inputs[name]) for name in self.names}
        outputs = [torch.from_numpy(o) for o in self.session.run(None if self.output is None else [self.output], feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
