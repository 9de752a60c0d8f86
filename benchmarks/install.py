"""What installing the zoo costs: the default install vs the CPU-only one, time and size.

Each arm installs ``domain-zoo[vision]`` from this checkout into a fresh virtual
environment and reports the wall time, the environment's size on disk and how
much of it is NVIDIA's CUDA libraries. ``default`` is the README's quickstart
(``pip install -e ".[vision]"``: PyPI's torch wheel, a CUDA build on x86_64);
``cpu`` installs PyTorch's CPU build from PyTorch's own wheel index first. An arm
that cannot reach its index records pip's error instead of numbers.

    python -m benchmarks.install [--arms default,cpu]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ARMS = {
    "default": [["-e", f"{ROOT}[vision]"]],
    "cpu": [["torch", "torchvision", "--index-url", CPU_INDEX], ["-e", f"{ROOT}[vision]"]],
}


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def install(arm: str, where: Path) -> dict:
    """One fresh venv, the arm's pip commands in order; time and sizes, or the first failure."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q"]
    start = time.perf_counter()
    for args in ARMS[arm]:
        run = subprocess.run(pip + args, capture_output=True, text=True)
        if run.returncode != 0:
            error = [line for line in run.stderr.splitlines() if "ERROR" in line or "rror" in line]
            return {"arm": arm, "ok": False, "command": "pip install " + " ".join(args),
                    "error": (error or run.stderr.splitlines() or ["?"])[-1][:300]}
    seconds = time.perf_counter() - start
    site = next((where / "lib").glob("python*/site-packages"))
    torch_version = subprocess.run([str(where / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    return {"arm": arm, "ok": True, "torch": torch_version, "seconds": round(seconds, 1), "venv_mb": round(size_mb(where)),
            "nvidia_mb": round(sum(size_mb(p) for p in site.glob("nvidia*"))),
            "torch_mb": round(size_mb(site / "torch"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="default,cpu")
    args = parser.parse_args()
    rows = []
    for arm in args.arms.split(","):
        where = Path(tempfile.mkdtemp(prefix=f"zoo-install-{arm}-"))
        try:
            rows.append(install(arm, where))
        finally:
            shutil.rmtree(where, ignore_errors=True)
        print(rows[-1], flush=True)
    write({"benchmark": "install", "command": "python -m benchmarks.install " + " ".join(sys.argv[1:]),
           "arms": rows, "env": zoo_env()})


if __name__ == "__main__":
    main()
