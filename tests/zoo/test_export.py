"""``zoo export``: a bundle that zoo.runtime runs with numpy + onnxruntime, torch unimportable."""

import numpy as np
import pytest

import zoo
from tests.bundles import check_exported, predict_without_torch
from tests.zoo import toy
from zoo.errors import InputError, WeightsIntegrityError
from zoo.export import export


def test_a_bundle_runs_without_torch_and_matches_eager(tmp_path, toy_registry):
    result = toy.run_cli("export", toy.MODEL_ID, "--out", str(tmp_path / "toy"))
    bundle = tmp_path / "toy"
    digest = check_exported(bundle, result.stdout)
    points = toy.toy_blobs()["test"][0][:6]
    np.save(tmp_path / "points.npy", points)
    got = predict_without_torch(bundle, digest, tmp_path / "points.npy")
    expected = zoo.load(toy.MODEL_ID, device="cpu").predict(list(points))
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)


def test_tampered_bundle_and_bad_out_dir_are_refused(tmp_path, toy_registry):
    from zoo.runtime import load_bundle

    bundle = export(toy.MODEL_ID, tmp_path / "b")
    assert [p["label"] in toy.LABELS for p in load_bundle(bundle).predict([np.ones(4, dtype=np.float32)])] == [True]
    with pytest.raises(InputError, match="exists and is not empty"):
        export(toy.MODEL_ID, bundle)
    model_file = bundle / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsIntegrityError, match="model.onnx"):
        load_bundle(bundle)
    with pytest.raises(InputError, match="expected an exported bundle"):
        load_bundle(tmp_path)
