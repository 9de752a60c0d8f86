"""``zoo.Model``: an ``nn.Module`` that carries its card, transform and predict."""
from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from backends.state import save_state
from zoo.card import WEIGHTS_FILE, ModelCard
from zoo.errors import InputError


class TaskAdapter(ABC):
    """Turns raw inputs into a batch and network outputs into domain predictions.

    Domains subclass this per task and register it with a ``TaskSpec``; it is
    rebuilt from the card alone, so a saved model predicts the same way.
    """

    def __init__(self, card: ModelCard):
        self.card = card

    @property
    @abstractmethod
    def transform(self) -> Callable[[Any], torch.Tensor]:
        """Raw single input → network input tensor."""

    def read(self, path: str | os.PathLike) -> Any:
        """A raw input from a file: ``.npy`` arrays here; domains add their formats."""
        import numpy as np

        path = Path(path)
        if path.suffix != ".npy":
            raise InputError(f"expected a .npy file for task {self.card.task!r}, got {path.name}")
        return np.load(path, allow_pickle=False)

    def batch(self, raw_inputs: Sequence[Any]) -> torch.Tensor:
        """Raw inputs → one batched tensor (or a dict of tensors, passed to the network as keywords)."""
        return torch.stack([self.transform(x) for x in raw_inputs])

    def predict(self, module: nn.Module, raw_inputs: Sequence[Any], **options: Any) -> Any:
        """Raw inputs → predictions (called in eval and inference mode): batch, forward, postprocess.

        Domains override it to add options (a batch size) or to run in chunks.
        """
        if options:
            raise InputError(f"task {self.card.task!r} takes no predict options, got {sorted(options)}")
        device = next(module.parameters()).device
        inputs = self.batch(raw_inputs)
        if isinstance(inputs, Mapping):
            outputs = module(**{k: v.to(device) for k, v in inputs.items()})
        else:
            outputs = module(inputs.to(device))
        return self.postprocess(outputs)

    def files(self) -> dict[str, Path]:
        """Files the task needs beside the weights (a tokenizer, a vocabulary), by file name.

        ``Model.save`` copies them into the model directory and pins their sha256 in
        the card; ``zoo.load(directory)`` resolves them there again.
        """
        return {}

    @abstractmethod
    def postprocess(self, outputs: torch.Tensor) -> list[Any]:
        """Network outputs → one prediction per input."""


class Model(nn.Module):
    """A network plus what it needs to be used: card, transform, predict, save.

    Train it like any module; ``forward`` is the network's. ``predict`` takes raw
    inputs (a single one or a list) and returns domain outputs.
    """

    def __init__(self, net: nn.Module, card: ModelCard, adapter: TaskAdapter):
        super().__init__()
        self.net = net
        self.card = card
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    @property
    def transform(self) -> Callable[[Any], torch.Tensor]:
        return self.adapter.transform

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def predict(self, raw_inputs: Any, **options: Any) -> Any:
        """Predict on one raw input or a list of them (a list in gives a list out).

        ``options`` go to the task adapter (e.g. ``batch_size`` for text).
        """
        single = not isinstance(raw_inputs, (list, tuple))
        items = [raw_inputs] if single else list(raw_inputs)
        if not items:
            return []
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                predictions = self.adapter.predict(self.net, items, **options)
        finally:
            self.train(was_training)
        return predictions[0] if single else predictions

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``weights.safetensors`` and ``card.json``; ``zoo.load(directory)`` reads them back."""
        from zoo.cache import sha256_file

        directory = Path(directory)
        extra = self.adapter.files()  # before card.files is rewritten: the adapter may find them through it
        weights = directory / WEIGHTS_FILE
        # A single metadata key: safetensors orders several keys at random, which would change the file's hash.
        save_state(self.net.state_dict(), weights, metadata={"format": "pt"})
        self.card.params = self.num_params
        self.card.files = {
            WEIGHTS_FILE: {"sha256": sha256_file(weights), "size": weights.stat().st_size, "source": "local"}
        }
        for name, path in extra.items():  # e.g. a tokenizer: the directory stays self-contained
            target = directory / name
            if not (target.exists() and os.path.samefile(path, target)):
                shutil.copyfile(path, target)
            self.card.files[name] = {
                "sha256": sha256_file(target), "size": target.stat().st_size, "source": "local", "format": "raw"
            }
        self.card.save(directory)
        return directory

    def extra_repr(self) -> str:
        return f"id={self.card.id!r}, task={self.card.task!r}"
