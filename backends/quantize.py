"""int8 quantization of an exported ONNX graph (dynamic, or static QDQ), and the ``onnxruntime-int8`` backend.

Dynamic quantization stores the weights of matrix products (``MatMul``, ``Gemm``) as int8,
one scale per output channel, and quantizes their activations to uint8 at run time, row
batch by row batch. It suits networks whose time goes to matrix products on activations
whose range changes per input: transformer encoders and MLP policies. Every other operator
(softmax, layer norm, GELU, the additions) stays fp32; :func:`quantize_dynamic_int8` lists
them.

Static quantization (:func:`quantize_static_int8`) fixes every activation's scale beforehand from a
calibration set, and writes them as QuantizeLinear/DequantizeLinear pairs (the QDQ format) that ONNX
Runtime fuses with the operator between them into one integer kernel (``QLinearConv``): convolutional
networks, whose time goes to convolutions that dynamic quantization leaves fp32.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from backends.onnx_backend import OnnxRunner, OnnxRuntimeBackend, export_onnx

#: The operators whose weights become int8 (the ones where the time of an encoder or an MLP goes).
QUANTIZED_OPS = ("MatMul", "Gemm")
# Operators the quantizer writes in their place (not "left in fp32").
_INT8_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear", "QuantizeLinear", "ConvInteger",
             "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"}


def quantize_dynamic_int8(source: str | os.PathLike, target: str | os.PathLike, *,
                          reduce_range: bool = False) -> dict[str, Any]:
    """Write the int8 version of the fp32 graph ``source`` to ``target``; returns what was quantized and what not.

    ``reduce_range``: weights in a 7-bit range, against the saturation of ONNX Runtime's uint8×int8 kernels on
    x86 CPUs without VNNI (see :func:`quantize_static_int8`). Measured on an AVX2-only CPU: with 8 bits the
    CartPole policy's int8 return fell from 500 to 70.7 (7 bits: 500), while MiniLM's mean cosine to fp32 was
    within 0.01 with 8 bits and 0.0103 below fp32 with 7; the task chooses (``TaskAdapter.int8_reduce_range``).

    ``{"mode", "weights", "activations", "quantized_ops", "quantized_nodes", "fp32_ops"}``: ``fp32_ops`` are
    the operator types that still compute in fp32 (left so on purpose: quantizing them loses accuracy and
    saves little time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    quantize_dynamic(str(source), str(tmp), per_channel=True, reduce_range=reduce_range, weight_type=QuantType.QInt8,
                     op_types_to_quantize=list(QUANTIZED_OPS))
    os.replace(tmp, target)
    graph = onnx.load(str(target), load_external_data=False).graph
    types = [node.op_type for node in graph.node]
    quantized = sum(t in ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm") for t in types)
    left = sorted({t for t in types if t not in _INT8_OPS} & _FLOAT_COMPUTE)
    return {"mode": "dynamic", "weights": f"int8{' in a 7-bit range' if reduce_range else ''}, per output channel",
            "activations": "uint8, quantized at run time",
            "quantized_ops": list(QUANTIZED_OPS), "quantized_nodes": quantized,
            "fp32_ops": left}


# Operator types that do floating-point arithmetic (shape plumbing such as Reshape or Gather is not listed:
# it has nothing to quantize).
_FLOAT_COMPUTE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Relu", "Gelu", "Softmax",
                  "LayerNormalization", "ReduceMean", "ReduceSum", "ReduceL2", "MatMul", "Gemm", "Conv",
                  "BatchNormalization", "Exp", "Log", "Neg", "Clip", "LpNormalization", "Max", "Min", "Where",
                  "Softplus", "HardSigmoid", "HardSwish", "Einsum", "Attention", "SkipLayerNormalization", "MaxPool",
                  "AveragePool", "GlobalAveragePool"}


def quantize_static_int8(source: str | os.PathLike, target: str | os.PathLike,
                         calibration: Iterable[dict[str, Any]], *, fp32_op_types: Iterable[str] = ()) -> dict[str, Any]:
    """Write the static QDQ int8 version of the fp32 graph ``source`` to ``target``, its activation ranges
    calibrated (min-max) on ``calibration``, batches of graph inputs (``{"input": N×C×H×W array}``).

    The graph is first prepared by ONNX Runtime's ``quant_pre_process`` (shape inference, and its graph
    optimisation: batch norms folded into the convolutions before them, else each would be quantized on its
    own; torch's exporter folds them already, so on our graphs it changes nothing measurable, but a graph from
    elsewhere may need it). Weights are int8 per output channel in 7 bits (``reduce_range``), activations
    uint8: ONNX Runtime's uint8×int8 kernels on x86 CPUs without VNNI (AVX2 only) saturate their 16-bit
    sums otherwise, which a bundle cannot rule out where it will run (measured on an AVX2-only AMD EPYC:
    the digits CNN's int8 top-1 0.961 against fp32 0.992 with 8 bits, 0.989 with 7). Nodes of ``fp32_op_types`` stay fp32
    (operators that lose accuracy when quantized). Returns ``{"mode", ..., "quantized_nodes", "fp32_nodes",
    "fp32_ops", "unfused"}``: ``unfused`` counts, by operator type, the nodes that ONNX Runtime still runs in
    fp32 between a DequantizeLinear and a QuantizeLinear once it has fused the rest (each costs a round trip)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="zoo-qdq-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        fp32_op_types = set(fp32_op_types)
        excluded = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in fp32_op_types]
        quantize_static(str(prepared), str(tmp), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=excluded)
    os.replace(tmp, target)
    graph = onnx.load(str(target), load_external_data=False).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    compute = [n for n in graph.node if n.op_type in _FLOAT_COMPUTE]
    quantized = [n for n in compute if any(name in dequantized for name in n.input)]
    return {"mode": "static", "format": "QDQ", "weights": "int8 in a 7-bit range, per output channel",
            "activations": "uint8, ranges calibrated (min-max) on the calibration set",
            "preprocessing": "onnxruntime quant_pre_process (shape inference, graph optimisation)",
            "quantized_ops": sorted({n.op_type for n in quantized}), "quantized_nodes": len(quantized),
            "fp32_nodes": excluded, "fp32_ops": sorted({n.op_type for n in compute if n not in quantized}),
            "unfused": unfused_qdq_nodes(target)}


def unfused_qdq_nodes(path: str | os.PathLike) -> dict[str, int]:
    """Operator types (with counts) that ONNX Runtime's CPU graph optimisation leaves as fp32 nodes fed by a
    DequantizeLinear in the QDQ graph at ``path``: the Q/DQ pairs around them cost time instead of saving it."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="zoo-qdq-optimised-") as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(folder) / "optimised.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(i in dequantized for i in node.input):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


class _Calibration:
    """onnxruntime's CalibrationDataReader over batches of graph inputs (it calls ``get_next`` until None)."""

    def __init__(self, batches: Iterable[dict[str, Any]]):
        self._batches = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)


class OnnxInt8Backend(OnnxRuntimeBackend):
    """ONNX Runtime on the int8-quantized graph (CPU): dynamic for transformer encoders and MLP policies; static
    QDQ, calibrated, for CNNs (``quantize``: how the task adapter quantizes, given the fp32 and int8 paths)."""

    name = "onnxruntime-int8"

    def devices(self) -> list[str]:
        return ["cpu"]  # ONNX Runtime's integer kernels for dynamic quantization are CPU ones

    def prepare(self, module, example_inputs: Any = None, *, path: str | os.PathLike | None = None,
                device: str = "cpu", quantize: Callable[[Path, Path], dict[str, Any]] | None = None) -> OnnxRunner:
        """Export ``module`` to fp32 ONNX, quantize it to int8 at ``path`` (a temporary file if none; dynamically
        unless ``quantize`` is given), open it."""
        from backends.onnx_backend import ExportError

        if example_inputs is None:
            raise ExportError("the onnxruntime-int8 backend needs example inputs to export the module")
        # The fp32 graph (and, without a path, the int8 one) live in a temporary folder, removed once the
        # session holds the model.
        with tempfile.TemporaryDirectory(prefix="zoo-onnx-int8-") as folder:
            fp32 = export_onnx(module, example_inputs, Path(folder) / "model.fp32.onnx")
            path = Path(path) if path is not None else Path(folder) / "model.int8.onnx"
            report = (quantize or quantize_dynamic_int8)(fp32, path)
            runner = OnnxRunner(path, device="cpu")
        runner.quantization = report  # what was quantized and what stayed fp32
        return runner
