"""``zoo export`` of the digits CNN: an image bundle that zoo.runtime runs without torch, matching eager."""
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

import zoo
from tests.bundles import check_exported, predict_without_torch


def test_digits_bundle_runs_without_torch_and_matches_eager(tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo", "export", "vision/digits_cnn.sklearn", "--out",
                             str(tmp_path / "digits")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "digits"
    digest = check_exported(bundle, result.stdout)
    images = load_digits().images[:6]
    np.save(tmp_path / "images.npy", images)
    got = predict_without_torch(bundle, digest, tmp_path / "images.npy")
    expected = zoo.load("vision/digits_cnn.sklearn", device="cpu").predict(list(images))
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)
