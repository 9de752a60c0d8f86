"""A toy domain for the core tests: a two-layer MLP over 4 numbers, registered into a fresh Registry.

It declares what a real domain declares (architecture, task adapter, a model with pinned
local safetensors weights, a dataset, a recipe and a benchmark suite), so the hub, the cache and the card are
tested without vision, nlp, robotics or medical. Weights are written at test time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from zoo.hashing import sha256_file
from zoo.model import TaskAdapter
from zoo.recipes import Recipe, RecipeResult, bounded
from zoo.bench import BenchTask, PlotSpec, TaskOutput
from zoo.registry import (ArchitectureSpec, DatasetSpec, ModelSpec, RecipeSpec, Registry, SuiteSpec, TaskSpec,
                          WeightFile)

MODEL_ID = "toy/mlp.seed0"
BARE_ID = "toy/mlp.untrained"
LABELS = ["low", "mid", "high"]
IN_FEATURES = 4


class TinyMLP(nn.Module):
    """4 → 8 → ``num_classes``; ``reset_classifier`` as timm names it."""

    def __init__(self, num_classes: int = 3, hidden: int = 8):
        super().__init__()
        self.body = nn.Linear(IN_FEATURES, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes)


def tiny_mlp(num_classes: int = 3, hidden: int = 8) -> TinyMLP:
    return TinyMLP(num_classes, hidden)


class ToyClassification(TaskAdapter):
    """Four numbers in, ``{"label", "index", "score", "top_k"}`` out, as a classifier's ``predict``."""

    @property
    def transform(self):
        def to_tensor(x: Any) -> torch.Tensor:
            return torch.as_tensor(x, dtype=torch.float32).reshape(IN_FEATURES)

        return to_tensor

    # ``zoo predict --out`` writes one prediction as JSON.
    output_suffixes = (".json",)

    def runtime_postprocessing(self) -> dict[str, Any]:
        return {"kind": "classification", "top_k": len(LABELS)}

    def postprocess(self, outputs: torch.Tensor) -> list[Any]:
        labels = self.card.labels or [str(i) for i in range(outputs.shape[-1])]
        predictions = []
        for row in outputs.softmax(-1).tolist():
            ranked = sorted(zip(labels, row), key=lambda pair: -pair[1])
            predictions.append({"label": ranked[0][0], "index": labels.index(ranked[0][0]), "score": ranked[0][1],
                                "top_k": ranked})
        return predictions

    def write(self, prediction: Any, path, *, source=None) -> Path:
        path = Path(path)
        path.write_text(json.dumps(prediction) + "\n", encoding="utf-8")
        return path


@dataclass
class ToyRecipe(Recipe):
    """A recipe with one field of each kind the override parser handles, ranges and its own CLI options;
    it trains nothing."""

    name: ClassVar[str] = "toy"
    cli_options: ClassVar[Mapping[str, str]] = {"--widths": "widths", "--data-folder": "data"}
    seed: int = 0
    epochs: int = bounded(3, "[1, inf)")
    lr: float = bounded(1e-3, "(0, inf)")
    augment: bool = True
    patience: int | None = bounded(None, "[0, inf)")
    widths: tuple = bounded((1, 2), "[1, inf)")
    data: str = "a/b"

    def run(self, out_dir, *, resume=False, progress=True):
        return RecipeResult(out_dir, [])


def toy_blobs(n: int = 30, seed: int = 0) -> dict[str, tuple]:
    """``n`` points of three Gaussian blobs (one per label), deterministic, split 2:1 into train and test."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(LABELS)
    points = rng.normal(size=(n, IN_FEATURES)).astype(np.float32) + 3 * np.eye(len(LABELS), IN_FEATURES)[labels]
    cut = 2 * n // 3
    return {"train": (points[:cut], labels[:cut]), "test": (points[cut:], labels[cut:])}


# The toy suite's plot: accuracy against the number of hidden units (the control has none: a line).
PLOT = PlotSpec(x="extra.hidden", x_label="hidden units", log_x=False)


def suite(quick: bool = False) -> list[BenchTask]:
    """The toy benchmark: the seeded MLP on the blobs' test split, beside a majority-class control."""
    import numpy as np

    def mlp_accuracy(seed: int) -> TaskOutput:
        import zoo

        points, labels = toy_blobs()["test"]
        predicted = [p["index"] for p in zoo.load(MODEL_ID, device="cpu").predict(list(points))]
        correct = (np.asarray(predicted) == labels).astype(float)
        return TaskOutput({"accuracy": float(correct.mean())}, per_example={"accuracy": correct}, extra={"hidden": 8})

    def majority_accuracy(seed: int) -> TaskOutput:
        train_labels, labels = toy_blobs()["train"][1], toy_blobs()["test"][1]
        correct = (labels == np.bincount(train_labels).argmax()).astype(float)
        return TaskOutput({"accuracy": float(correct.mean())}, per_example={"accuracy": correct})

    return [BenchTask("mlp", MODEL_ID, "toy/blobs", run=mlp_accuracy),
            BenchTask("majority", "control/majority", "toy/blobs", control=True, run=majority_accuracy)]


def write_weights(directory: Path, seed: int = 0) -> WeightFile:
    """Save a seeded TinyMLP's state dict to ``directory`` and pin it."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path = Path(directory) / f"toy-mlp-seed{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_mlp().state_dict().items()}, str(path))
    return WeightFile("weights.safetensors", sha256_file(path), str(path), size=path.stat().st_size)


def register(registry: Registry, weights: WeightFile) -> None:
    """Declare the toy domain as ``vision.register`` declares vision."""
    registry.add(ArchitectureSpec("tiny_mlp", f"{__name__}:tiny_mlp"))
    registry.add(TaskSpec("toy-classification", f"{__name__}:ToyClassification", recipe="toy-classification"))
    card = {"labels": LABELS, "input": {"shape": [IN_FEATURES], "dtype": "float32"}, "license": "CC0-1.0"}
    # The recipe "that trained it": hyper-parameters other than ToyRecipe's defaults, so tests tell them apart.
    trained = {**card, "provenance": {"recipe": {"name": "toy-classification", "params": {"augment": False, "lr": 0.5}}}}
    registry.add(ModelSpec(MODEL_ID, task="toy-classification", architecture="tiny_mlp",
                                 arch_args={"num_classes": 3}, weights=(weights,), card=trained,
                                 description="a seeded tiny MLP with local weights"))
    registry.add(ModelSpec(BARE_ID, task="toy-classification", architecture="tiny_mlp",
                                 arch_args={"num_classes": 3}, card=card, description="no weights"))
    registry.add(DatasetSpec("toy/blobs", task="toy-classification", loader=f"{__name__}:toy_blobs"))
    registry.add(RecipeSpec("toy-classification", task="toy-classification",
                                   recipe=f"{__name__}:ToyRecipe"))
    registry.add(SuiteSpec("toy", f"{__name__}:suite", plot=f"{__name__}:PLOT"))


def toy_registry(weights_dir: Path) -> Registry:
    """A fresh Registry holding only the toy domain."""
    registry = Registry()
    register(registry, write_weights(weights_dir))
    return registry


@contextmanager
def registered():
    """The process-wide registry replaced by a toy-only one for the while (for fixtures wider than a test)."""
    import tempfile

    from zoo import registry as registry_module

    saved = registry_module._registry
    registry_module._registry = toy_registry(Path(tempfile.mkdtemp(prefix="toy-weights-")))
    try:
        yield registry_module._registry
    finally:
        registry_module._registry = saved


def cli() -> None:
    """``zoo`` with the toy domain as the only one (``python -c "from tests.zoo.toy import cli; cli()" ARGS``)."""
    import tempfile

    from zoo import cli as zoo_cli
    from zoo import registry as registry_module

    registry_module._registry = toy_registry(Path(tempfile.mkdtemp(prefix="toy-weights-")))
    zoo_cli.main()


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a fresh process whose only domain is the toy one; ``check`` fails the test on a non-zero exit."""
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", "from tests.zoo.toy import cli; cli()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
