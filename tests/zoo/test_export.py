"""``zoo export``: a bundle that zoo.runtime runs with numpy + onnxruntime, torch unimportable."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits

import zoo
from tests.zoo import toy
from zoo.errors import InputError, WeightsIntegrityError
from zoo.export import export

SENTENCES = ["A short sentence.", "Benchmarks need a control arm so that a number means something."]

# Imports that must fail inside the runtime process: torch, what pulls it in, and the CLI/cache stack.
BLOCKER = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "torchvision", "timm", "transformers", "safetensors", "sklearn",
                                              "huggingface_hub", "typer", "rich", "filelock", "platformdirs", "yaml"}:
                raise ImportError(f"{name} is blocked: the runtime must not need it")
    sys.meta_path.insert(0, Block())
""")


def run_without_torch(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_digits_bundle_runs_without_torch_and_matches_eager(tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo", "export", "vision/digits_cnn.sklearn", "--out",
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
    expected = zoo.load("vision/digits_cnn.sklearn", device="cpu").predict(list(images))
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)


def test_text_bundle_keeps_the_tokenizer_outside_the_graph(tmp_path):
    bundle = export("nlp/text_encoder.all_minilm_l6_v2", tmp_path / "minilm")
    assert (bundle / "tokenizer.json").is_file()
    spec = json.loads((bundle / "bundle.json").read_text())
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "token_type_ids", "attention_mask"]
    assert spec["inputs"][0]["shape"] == [None, None]  # batch and sequence length are dynamic
    got = np.asarray(run_without_torch(f"""
        import json
        from zoo.runtime import load_bundle
        print(json.dumps([e.tolist() for e in load_bundle({str(bundle)!r}).predict({SENTENCES!r})]))
    """))
    expected = zoo.load("nlp/text_encoder.all_minilm_l6_v2", device="cpu").predict(SENTENCES)
    assert got.shape == (2, 384) and np.abs(got - expected).max() < 1e-4


def test_tampered_bundle_and_bad_out_dir_are_refused(tmp_path, toy_registry):
    from zoo.runtime import load_bundle

    bundle = export(toy.MODEL_ID, tmp_path / "b")
    assert np.asarray(load_bundle(bundle).predict([np.ones(4, dtype=np.float32)])).shape == (1, 3)
    with pytest.raises(InputError, match="exists and is not empty"):
        export(toy.MODEL_ID, bundle)
    model_file = bundle / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsIntegrityError, match="model.onnx"):
        load_bundle(bundle)
    with pytest.raises(InputError, match="expected an exported bundle"):
        load_bundle(tmp_path)
