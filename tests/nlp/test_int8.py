"""int8 export and backend: MiniLM quantized, its quality measured on real tweets, refused past its tolerance."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import zoo
from tests.nlp.helpers import NEGATIVE, POSITIVE, install_in_hf_cache
from zoo.errors import BackendError, InputError, QualityLossError
from zoo.export import export
from zoo.quantize import quality_summary, quantize_bundle
from zoo.runtime import load_bundle

SENTENCES = ["A short sentence.", "Benchmarks need a control arm so that a number means something."]


@pytest.fixture(scope="module")
def minilm_fp32(minilm, tmp_path_factory):
    """MiniLM's fp32 bundle, exported once for the module (the int8 bundles are made from it)."""
    return export(minilm, tmp_path_factory.mktemp("minilm") / "fp32")


@pytest.fixture
def quick_minilm(minilm, monkeypatch):
    """MiniLM measured on the first 64 test tweets instead of 512 (the test stays fast)."""
    monkeypatch.setattr(minilm.adapter, "int8_quality_samples", 64)
    return minilm


def test_int8_bundle_records_its_quality_on_real_tweets_and_what_stayed_fp32(quick_minilm, minilm_fp32, tmp_path):
    bundle = quantize_bundle(quick_minilm, minilm_fp32, tmp_path / "int8")
    quality = json.loads((bundle / "parity.json").read_text())["quality"]
    assert quality["dataset"] == "nlp/tweets-sentiment" and quality["split"] == "test" and quality["samples"] == 64
    assert quality["fp32"] > 0.9999 and 0.98 < quality["int8"] < 1.0 and quality["passed"]
    assert quality["loss"] == pytest.approx(quality["fp32"] - quality["int8"])
    quantization = json.loads((bundle / "bundle.json").read_text())["quantization"]
    assert quantization["quantized_nodes"] == 36  # 6 layers x (q, k, v, out, 2 feed-forward) weight matrices
    assert {"Softmax", "LayerNormalization", "Gelu"} <= set(quantization["fp32_ops"])
    assert (bundle / "model.onnx").stat().st_size < (minilm_fp32 / "model.onnx").stat().st_size * 0.7
    got = np.asarray(load_bundle(bundle).predict(SENTENCES))
    cosines = (got * quick_minilm.predict(SENTENCES)).sum(axis=1)  # both L2-normalised
    assert got.shape == (2, 384) and cosines.min() > 0.97


def test_export_refuses_an_int8_bundle_past_the_tolerance_unless_allowed(quick_minilm, minilm_fp32, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(quick_minilm.adapter, "int8_tolerance", 1e-6)  # int8 always loses more than this
    with pytest.raises(QualityLossError, match=r"loses 0\.0\d+ mean cosine .* 64 samples of nlp/tweets-sentiment "
                                               r"test .* at most 1e-06; nothing written.*--allow-quality-loss"):
        quantize_bundle(quick_minilm, minilm_fp32, tmp_path / "refused")
    assert not (tmp_path / "refused").exists() and [p.name for p in tmp_path.iterdir()] == []
    bundle = quantize_bundle(quick_minilm, minilm_fp32, tmp_path / "allowed", allow_quality_loss=True)
    quality = json.loads((bundle / "parity.json").read_text())["quality"]
    assert not quality["passed"] and quality["allowed_by"] == "--allow-quality-loss"
    assert "written anyway (--allow-quality-loss)" in quality_summary("m", quality)
    load_bundle(bundle)  # sealed: the recorded quality is part of the manifest


def test_int8_backend_runs_a_text_classifier_checked_against_eager(tiny_bert, isolated_zoo_home):
    install_in_hf_cache(tiny_bert, isolated_zoo_home / "hf" / "hub", "tiny-org/tiny-bert")
    eager = zoo.load("hf:tiny-org/tiny-bert", task="text-classification", device="cpu")
    fast = eager.to_backend("onnxruntime-int8")
    assert fast.backend == "onnxruntime-int8" and fast.parity.passed
    assert min(b["min_cosine"] for b in fast.parity.to_dict()["batches"]) >= 0.98
    texts = ["the movie was great !", "i hated it .", "awful"]
    scores = np.array([p["score"] for p in fast.predict(texts)])
    assert np.abs(scores - np.array([p["score"] for p in eager.predict(texts)])).max() < 0.05


def test_a_classifier_s_int8_quality_is_its_macro_f1_on_the_data_its_card_names(tiny_bert, isolated_zoo_home,
                                                                                 tmp_path):
    install_in_hf_cache(tiny_bert, isolated_zoo_home / "hf" / "hub", "tiny-org/tiny-bert")
    model = zoo.load("hf:tiny-org/tiny-bert", task="text-classification", device="cpu")
    with pytest.raises(InputError, match="names no dataset in its metrics"):  # nothing to measure int8 on
        model.adapter.int8_quality(model, None, None)
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",positive\n' for t in POSITIVE)
                    + "".join(f'"{t}",negative\n' for t in NEGATIVE), encoding="utf-8")
    model.card.metrics = [{"name": "macro_f1", "value": 0.5, "dataset": str(data), "split": "val"}]
    bundle = export(model, tmp_path / "int8", quantize="int8", allow_quality_loss=True)
    quality = json.loads((bundle / "parity.json").read_text())["quality"]
    assert quality["metric"] == "macro_f1" and quality["dataset"] == str(data) and quality["split"] == "val"
    assert quality["samples"] >= 2 and 0 <= quality["int8"] <= 1 and 0 <= quality["fp32"] <= 1
    assert quality["passed"] == (quality["fp32"] - quality["int8"] <= 0.01)


SEGMENTER = "vision/lraspp_efficientnet_lite0.fashion_composite"  # a task without int8 quantization


def test_a_task_without_int8_is_refused_saying_what_has_it(tmp_path):
    with pytest.raises(BackendError, match="has no int8 quantization: dynamic int8 .* static QDQ int8 image"):
        zoo.load(SEGMENTER, device="cpu", backend="onnxruntime-int8")
    with pytest.raises(InputError, match="--quantize must be one of"):
        export("vision/digits_cnn.sklearn", tmp_path / "b", quantize="int4")


def test_the_zoo_script_takes_quantize_and_refuses_a_task_without_int8(tmp_path):
    script = shutil.which("zoo")
    assert script, "the zoo console script is not on PATH: pip install -e ."
    run = lambda *args: subprocess.run([script, *args], capture_output=True, text=True,  # noqa: E731
                                       env={**os.environ, "COLUMNS": "200"})
    help_text = run("export", "--help").stdout
    assert "--quantize" in help_text and "--allow-quality-loss" in help_text and "--calibration" in help_text
    refused = run("export", SEGMENTER, "--quantize", "int8", "--out", str(tmp_path / "b"))
    assert refused.returncode == 1 and "has no int8 quantization" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_the_zoo_script_writes_an_int8_bundle_and_prints_its_quality(tmp_path):
    out = tmp_path / "int8"
    result = subprocess.run([shutil.which("zoo"), "export", "nlp/text_encoder.all_minilm_l6_v2", "--format", "onnx",
                             "--quantize", "int8", "--out", str(out)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "int8: mean cosine similarity" in result.stdout and "512 samples of nlp/tweets-sentiment" in result.stdout
    assert json.loads((out / "parity.json").read_text())["quality"]["passed"]
