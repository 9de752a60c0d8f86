"""Domain Zoo: pretrained models in one line, fine-tuning, and benchmark suites.

``import zoo`` imports no torch; ``zoo.Model`` and the engines load on first use.
"""
from zoo.card import ModelCard
from zoo.errors import (
    InputError,
    OfflineError,
    UnknownModelError,
    UnsafeFormatError,
    WeightsIntegrityError,
    ZooError,
)
from zoo.hub import fetch, info, list_models, load

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "Model",
    "ModelCard",
    "OfflineError",
    "UnknownModelError",
    "UnsafeFormatError",
    "WeightsIntegrityError",
    "ZooError",
    "fetch",
    "info",
    "list_models",
    "load",
]


def __getattr__(name: str):
    # Model subclasses nn.Module: import torch only when someone asks for it.
    if name == "Model":
        from zoo.model import Model

        return Model
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
