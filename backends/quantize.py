"""Dynamic int8 quantization of an exported ONNX graph, and the ``onnxruntime-int8`` backend.

Dynamic quantization stores the weights of matrix products (``MatMul``, ``Gemm``) as int8,
one scale per output channel, and quantizes their activations to uint8 at run time, row
batch by row batch. It suits networks whose time goes to matrix products on activations
whose range changes per input: transformer encoders and MLP policies. Every other operator
(softmax, layer norm, GELU, the additions) stays fp32; :func:`quantize_dynamic_int8` lists
them. Convolutional networks want static QDQ quantization with a calibration set instead,
which this module does not do.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from backends.onnx_backend import OnnxRunner, OnnxRuntimeBackend, export_onnx

#: The operators whose weights become int8 (the ones where the time of an encoder or an MLP goes).
QUANTIZED_OPS = ("MatMul", "Gemm")
# Operators the quantizer writes in their place (not "left in fp32").
_INT8_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear", "QuantizeLinear", "ConvInteger",
             "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"}


def quantize_dynamic_int8(source: str | os.PathLike, target: str | os.PathLike) -> dict[str, Any]:
    """Write the int8 version of the fp32 graph ``source`` to ``target``; returns what was quantized and what not.

    ``{"mode", "weights", "activations", "quantized_ops", "quantized_nodes", "fp32_ops"}``: ``fp32_ops`` are
    the operator types that still compute in fp32 (left so on purpose: quantizing them loses accuracy and
    saves little time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    quantize_dynamic(str(source), str(tmp), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=list(QUANTIZED_OPS))
    os.replace(tmp, target)
    graph = onnx.load(str(target), load_external_data=False).graph
    types = [node.op_type for node in graph.node]
    quantized = sum(t in ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm") for t in types)
    left = sorted({t for t in types if t not in _INT8_OPS} & _FLOAT_COMPUTE)
    return {"mode": "dynamic", "weights": "int8, per output channel", "activations": "uint8, quantized at run time",
            "quantized_ops": list(QUANTIZED_OPS), "quantized_nodes": quantized,
            "fp32_ops": left}


# Operator types that do floating-point arithmetic (shape plumbing such as Reshape or Gather is not listed:
# it has nothing to quantize).
_FLOAT_COMPUTE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Relu", "Gelu", "Softmax",
                  "LayerNormalization", "ReduceMean", "ReduceSum", "ReduceL2", "MatMul", "Gemm", "Conv",
                  "BatchNormalization", "Exp", "Log", "Neg", "Clip", "LpNormalization", "Max", "Min", "Where",
                  "Softplus", "HardSigmoid", "HardSwish", "Einsum", "Attention", "SkipLayerNormalization"}


class OnnxInt8Backend(OnnxRuntimeBackend):
    """ONNX Runtime on the dynamically int8-quantized graph (CPU): for transformer encoders and MLP policies."""

    name = "onnxruntime-int8"

    def devices(self) -> list[str]:
        return ["cpu"]  # ONNX Runtime's integer kernels for dynamic quantization are CPU ones

    def prepare(self, module, example_inputs: Any = None, *, path: str | os.PathLike | None = None,
                device: str = "cpu") -> OnnxRunner:
        """Export ``module`` to fp32 ONNX, quantize it to int8 at ``path`` (a temporary file if none), open it."""
        from backends.onnx_backend import ExportError

        if example_inputs is None:
            raise ExportError("the onnxruntime-int8 backend needs example inputs to export the module")
        # The fp32 graph (and, without a path, the int8 one) live in a temporary folder, removed once the
        # session holds the model.
        with tempfile.TemporaryDirectory(prefix="zoo-onnx-int8-") as folder:
            fp32 = export_onnx(module, example_inputs, Path(folder) / "model.fp32.onnx")
            path = Path(path) if path is not None else Path(folder) / "model.int8.onnx"
            report = quantize_dynamic_int8(fp32, path)
            runner = OnnxRunner(path, device="cpu")
        runner.quantization = report  # what was quantized and what stayed fp32
        return runner
