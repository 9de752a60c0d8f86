"""Helpers of the exported-bundle tests: edit a bundle's JSON, run code where torch cannot be imported."""
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
