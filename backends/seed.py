"""Seeding and the deterministic switch."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Make torch pick deterministic kernels (and fail loudly where none exists)."""
    if enabled:
        # cuBLAS needs this workspace setting to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def rng_state() -> dict:
    """Every RNG's state, as tensors and JSON-able values (no pickle needed)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state_to_json(state: dict) -> dict:
    """:func:`rng_state` with its tensors as lists of ints, for JSON (or another rank)."""
    encoded = {**state, "torch": state["torch"].tolist()}
    if "cuda" in state:
        encoded["cuda"] = [s.tolist() for s in state["cuda"]]
    return encoded


def rng_state_from_json(encoded: dict) -> dict:
    """Undo :func:`rng_state_to_json`."""
    state = {**encoded, "torch": torch.tensor(encoded["torch"], dtype=torch.uint8)}
    if "cuda" in encoded:
        state["cuda"] = [torch.tensor(s, dtype=torch.uint8) for s in encoded["cuda"]]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np.asarray(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
