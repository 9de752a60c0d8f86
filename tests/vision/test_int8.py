"""Static QDQ int8 of a CNN: the digits CNN calibrated on its own training digits, its top-1 measured, run without
torch; calibration sources that cannot calibrate it refused."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image

import zoo
from tests.bundles import predict_without_torch
from vision.datasets import digits
from zoo.errors import InputError, ZooError
from zoo.export import export

DIGITS_ID = "vision/digits_cnn.sklearn"


@pytest.fixture(scope="module")
def int8_digits(tmp_path_factory):
    """The digits CNN exported by the zoo script with ``--quantize int8``: (bundle folder, the script's output)."""
    out = tmp_path_factory.mktemp("digits") / "int8"
    result = subprocess.run([sys.executable, "-m", "zoo", "export", DIGITS_ID, "--quantize", "int8", "--out", str(out)],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    return out, " ".join(result.stdout.split())


@pytest.fixture(scope="module")
def model():
    return zoo.load(DIGITS_ID, device="cpu")


def test_a_cnn_quantizes_statically_calibrated_on_its_own_training_digits(int8_digits):
    bundle, _ = int8_digits
    quantization = json.loads((bundle / "bundle.json").read_text())["quantization"]
    assert quantization["mode"] == "static" and quantization["format"] == "QDQ"
    # 3 convolutions (batch norms folded into them), max pool, global mean, the linear head: all int8
    assert quantization["quantized_ops"] == ["Conv", "Gemm", "MaxPool", "ReduceMean"]
    assert quantization["quantized_nodes"] == 6 and quantization["fp32_nodes"] == [] == quantization["fp32_ops"]
    assert quantization["unfused"] == {"ReduceMean": 1}  # ONNX Runtime has no integer ReduceMean kernel
    calibration = quantization["calibration"]
    train = digits().train
    assert {k: calibration[k] for k in ("dataset", "split", "samples", "seed")} == \
        {"dataset": "vision/digits", "split": "train", "samples": 256, "seed": 0}
    indices = calibration["indices"]
    assert len(set(indices)) == 256 and indices == sorted(indices) and indices[-1] < len(train)
    assert calibration["fingerprint"] == digits().fingerprint
    graph = onnx.load(str(bundle / "model.onnx")).graph
    types = [node.op_type for node in graph.node]
    assert types.count("Conv") == 3 and "BatchNormalization" not in types
    assert types.count("QuantizeLinear") >= 5 and types.count("DequantizeLinear") >= 9
    kernels = [tensor for tensor in graph.initializer if len(tensor.dims) == 4]  # out x in x 3 x 3
    assert len(kernels) == 3 and all(k.data_type == onnx.TensorProto.INT8 for k in kernels)


def test_the_int8_top1_is_measured_on_the_real_test_digits_beside_fp32(int8_digits, model):
    bundle, printed = int8_digits
    quality = json.loads((bundle / "parity.json").read_text())["quality"]
    assert {k: quality[k] for k in ("metric", "dataset", "split", "samples", "tolerance")} == \
        {"metric": "top1", "dataset": "vision/digits", "split": "test", "samples": len(digits().test), "tolerance": 0.01}
    assert quality["fp32"] == pytest.approx(model.card.metric("accuracy", split="test")["value"], abs=1e-6)
    assert quality["passed"] and quality["fp32"] - quality["int8"] <= 0.01 and quality["int8"] > 0.97
    assert f"int8: top1 {quality['int8']:.4f}" in printed and "samples of vision/digits test" in printed


def test_the_int8_bundle_runs_without_torch_agreeing_with_eager(int8_digits, model, tmp_path):
    bundle, _ = int8_digits
    test = digits().test
    images = np.stack([test.raw(i) for i in range(40)])
    np.save(tmp_path / "images.npy", images)
    digest = (bundle / "manifest.sha256").read_text().split()[0]
    got = [p["index"] for p in predict_without_torch(bundle, digest, tmp_path / "images.npy")]
    expected = [p["index"] for p in model.predict(list(images))]
    assert sum(g == e for g, e in zip(got, expected)) >= 39


def test_the_int8_backend_quantizes_a_cnn_statically(model):
    fast = model.to_backend("onnxruntime-int8")
    assert fast.backend == "onnxruntime-int8" and fast.parity.passed
    assert fast.net.runner.quantization["mode"] == "static"
    assert fast.net.runner.quantization["calibration"]["dataset"] == "vision/digits"
    images = list(digits().test.images[:20])
    assert [p["index"] for p in fast.predict(images)] == [p["index"] for p in model.predict(images)]


def test_a_calibration_set_that_cannot_calibrate_the_model_is_refused_naming_it(model, tmp_path, monkeypatch):
    adapter = model.adapter
    with pytest.raises(InputError, match="nlp/tweets-sentiment is a dataset for text-classification"):
        adapter.int8_calibration("nlp/tweets-sentiment")
    with pytest.raises(ZooError, match="vision/no-such-digits"):
        adapter.int8_calibration("vision/no-such-digits")
    two_classes = tmp_path / "two"
    for label in ("a", "b"):
        (two_classes / label).mkdir(parents=True)
        for index in range(5):
            Image.fromarray(np.full((8, 8), index * 40, np.uint8)).save(two_classes / label / f"{index}.png")
    with pytest.raises(InputError, match=r"must have training images of the model's 10 classes, got \d+ images of 2"):
        adapter.int8_calibration(str(two_classes))
    monkeypatch.setattr(model.card, "provenance", {})  # a card that does not say what it was trained on
    with pytest.raises(InputError, match="names none .*--calibration DATA"):
        export(model, tmp_path / "int8", quantize="int8")
    assert not (tmp_path / "int8").exists()
    bundle = export(model, tmp_path / "int8", quantize="int8", calibration="vision/digits")  # named explicitly
    calibration = json.loads((bundle / "bundle.json").read_text())["quantization"]["calibration"]
    assert calibration["dataset"] == "vision/digits" and calibration["samples"] == 256


def test_a_dynamically_quantized_task_takes_no_calibration_set(model, tmp_path):
    from zoo.model import TaskAdapter

    with pytest.raises(InputError, match="quantizes dynamically and takes no calibration set"):
        TaskAdapter.quantize_int8(model.adapter, model, tmp_path / "a.onnx", tmp_path / "b.onnx",
                                  calibration="vision/digits")
