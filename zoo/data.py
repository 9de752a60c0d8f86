"""Data helpers every domain shares: deterministic stratified splits and data fingerprints."""
from __future__ import annotations

import hashlib

import numpy as np

from zoo.errors import InputError


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Indices per split, each class divided in the same proportions; deterministic in ``seed``.

    ``fractions`` names the held-out splits (e.g. ``{"val": .15, "test": .2}``); the rest is ``train``.
    Each fraction must be in [0, 1) and their sum below 1 (an InputError otherwise).
    """
    check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], **{name: [] for name in fractions}}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for name, fraction in fractions.items():
            count = int(round(len(members) * fraction))
            parts[name].append(members[start : start + count])
            start += count
        parts["train"].append(members[start:])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def check_fractions(fractions: dict[str, float]) -> None:
    """InputError unless every held-out fraction is in [0, 1) and together they leave some data to train on."""
    for name, fraction in fractions.items():
        if not 0 <= fraction < 1:  # also False for NaN
            raise InputError(f"{name}_fraction must be in [0, 1), got {fraction!r}")
    if sum(fractions.values()) >= 1:
        shown = " + ".join(f"{name}_fraction={f:g}" for name, f in fractions.items())
        raise InputError(f"held-out fractions must leave data to train on: {shown} is at least 1; lower them")


def fingerprint(*parts: bytes | np.ndarray | str) -> str:
    """sha256 over the given data, labels and split indices (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        elif isinstance(part, str):
            part = part.encode()
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
