"""Device choice: cuda > mps > cpu."""
from __future__ import annotations

import torch


def best_device() -> torch.device:
    """The fastest device present: ``cuda``, then ``mps``, then ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None`` into :func:`best_device`, anything else into a ``torch.device``."""
    if device is None or device == "auto":
        return best_device()
    return torch.device(device)


def to_device(data, device: torch.device):
    """A tensor, or tensors nested in dicts, lists and tuples, moved to ``device`` (anything else as is)."""
    if torch.is_tensor(data):
        return data.to(device, non_blocking=True)
    if isinstance(data, dict):
        return {k: to_device(v, device) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(to_device(v, device) for v in data)
    return data
