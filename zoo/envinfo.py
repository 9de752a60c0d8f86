"""The environment fingerprint stored beside every benchmark number.

A latency or an accuracy only means something next to the machine, the package
versions and the code version that produced it. Torch is imported only when
:func:`fingerprint` is called, so ``import zoo`` stays fast.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 2.0


def fingerprint() -> dict[str, Any]:
    """Python, platform, CPU, GPU, package versions and git commit of the working directory.

    Computed once per process; each call returns a fresh copy so callers may edit it.
    """
    return dict(_fingerprint())


@functools.lru_cache(maxsize=1)
def _fingerprint() -> dict[str, Any]:
    commit, dirty = _git_state(Path.cwd())
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": _version("numpy"),
        **_torch_info(),
        "domain_zoo": _version("domain-zoo") or "unknown",
        "git_commit": commit,
        "git_dirty": dirty,
    }


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels only say "Hardware" or "Model".
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass  # not Linux: fall through to what the platform module knows
    return platform.processor() or platform.machine() or "unknown"


INT8_EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_int8_extensions() -> list[str] | None:
    """The x86 extensions ONNX Runtime's int8 kernels choose between (without VNNI, its uint8×int8 products
    saturate 16-bit sums unless weights keep 7 bits), as /proc/cpuinfo lists them; None where it is not readable."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    flags = next((line.partition(":")[2].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [name for name in INT8_EXTENSIONS if name in flags]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _torch_info() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": None, "cuda": None, "gpu": None, "gpu_count": 0}
    try:
        import torch
    except Exception:  # a missing or broken torch must not stop a benchmark report
        return info
    info["torch"] = torch.__version__
    info["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        info["gpu_count"] = torch.cuda.device_count()
        info["gpu"] = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["gpu_count"] = 1
        info["gpu"] = "Apple MPS"
    return info


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, not a repo, no commit yet, or hung
        return None
    return done.stdout.strip()


def _git_state(cwd: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the repository holding ``cwd``; ``(None, None)`` outside one."""
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    # Untracked files are left out: build outputs and results should not mark a tree dirty.
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)
