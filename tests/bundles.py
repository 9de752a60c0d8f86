"""Helpers of the exported-bundle tests: a bundle's JSON edited, code run where torch cannot be imported.
The toy bundle they tamper with is the ``bundle`` fixture (tests/conftest.py)."""
import json
import subprocess
import sys
import textwrap

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


def edit_json(path, change) -> None:
    """Apply ``change`` to the JSON object in ``path`` and write it back (the manifest is left as it was)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def check_exported(bundle, export_stdout: str) -> str:
    """A bundle ``zoo export`` wrote: its files, a passed parity check and the digest printed to pin; the digest."""
    assert {p.name for p in bundle.iterdir()} == {"model.onnx", "bundle.json", "card.json", "parity.json",
                                                  "manifest.json", "manifest.sha256"}
    digest = (bundle / "manifest.sha256").read_text().split()[0]
    assert f"sha256={digest!r}" in " ".join(export_stdout.split())  # the digest to pin is printed
    assert json.loads((bundle / "parity.json").read_text())["passed"]
    return digest


def predict_without_torch(bundle, digest: str, inputs_npy) -> list:
    """The bundle's predictions, pinned to ``digest``, for the arrays saved in ``inputs_npy``, torch unimportable."""
    return run_without_torch(f"""
        import json, numpy as np
        from zoo.runtime import load_bundle
        model = load_bundle({str(bundle)!r}, sha256={digest!r})
        print(json.dumps(model.predict(list(np.load({str(inputs_npy)!r})))))
    """)
