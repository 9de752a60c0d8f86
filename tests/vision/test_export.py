"""``zoo export`` of the digits CNN: an image bundle that zoo.runtime runs without torch, matching eager."""
import json
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

import zoo
from tests.bundles import run_without_torch


def test_digits_bundle_runs_without_torch_and_matches_eager(tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo", "export", "vision/digits-cnn.sklearn", "--out",
                             str(tmp_path / "digits")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "digits"
    assert {p.name for p in bundle.iterdir()} == {"model.onnx", "bundle.json", "card.json", "parity.json",
                                                  "manifest.json", "manifest.sha256"}
    digest = (bundle / "manifest.sha256").read_text().split()[0]
    assert f"sha256={digest!r}" in " ".join(result.stdout.split())  # the digest to pin is printed
    assert json.loads((bundle / "parity.json").read_text())["passed"]
    images = load_digits().images[:6]
    np.save(tmp_path / "images.npy", images)
    got = run_without_torch(f"""
        import json, numpy as np
        from zoo.runtime import load_bundle
        model = load_bundle({str(bundle)!r}, sha256={digest!r})
        print(json.dumps(model.predict(list(np.load({str(tmp_path / 'images.npy')!r})))))
    """)
    expected = zoo.load("vision/digits-cnn.sklearn", device="cpu").predict(list(images))
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)
