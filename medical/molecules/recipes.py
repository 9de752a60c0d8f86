"""The ``molecular-property`` recipe on the shared Trainer: a D-MPNN (or the fingerprint MLP) on your molecules.

Regression targets are standardized with the train split's mean and standard deviation
(the scaling goes into the card, and predictions are given back in the target's units);
the loss is the mean squared error over the target values present. Classification
targets (0/1) use binary cross-entropy, also masked: a missing value is no error.
Metrics are reported in the targets' own units: RMSE, MAE and R² (regression), ROC AUC and
accuracy (classification), on val and on test when the split has one.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from medical.molecules.chem import MAX_HEAVY_ATOMS, STANDARDIZATION
from zoo.errors import InputError
from zoo.recipes import RecipeResult, TrainerRecipe, bounded, card_metrics

TASK_TYPES = ("regression", "classification")
DESCRIPTOR_SCALINGS = ("standard", "quantile")
DESCRIPTOR_CLIP = 6.0  # standard deviations: see featurize.scale_descriptors
DESCRIPTOR_QUANTILES = 51  # train quantiles kept per descriptor for the "quantile" scaling (every 2%)
INPUTS_OF = {"dmpnn": "graph", "fingerprint_mlp": "morgan"}


@dataclass
class MolecularPropertyRecipe(TrainerRecipe):
    """Train a molecular property model on a dataset id or a CSV/TSV/SDF file.

    ``target`` names the target column(s) (comma-separated for several; default: every
    numeric column). ``split`` is ``fixed`` (the data's own split, or a ``split``
    column), ``random`` or ``scaffold``; ``auto`` takes the dataset's own default, or for a
    file ``fixed`` when it has a split column, else ``scaffold``. ``descriptors`` adds
    RDKit's 2-D descriptors beside the learned representation, scaled as ``descriptor_scaling`` says:
    ``standard`` (train mean and standard deviation, clipped) or ``quantile`` (the train CDF, in [0, 1]).
    ``depth``, ``hidden``, ``readout``, ``dropout`` and ``ffn_layers`` change the model's
    architecture where it has them (None keeps the model's own). ``ensemble_size`` N > 1 trains N
    networks with seeds ``train.seed`` ... ``train.seed + N - 1`` (each kept as a model under
    ``members/seed_S``) and saves them as one model that averages their outputs; its card holds the
    ensemble's metrics, each metric's mean over members with a 95% CI (``rmse_member_mean``), and
    each member's seed and metrics (``provenance.ensemble``). A model with weights (a folder
    this recipe wrote) is trained further from them, with its own scalings, unless ``pretrained`` is false.
    """

    name: ClassVar[str] = "molecular-property"
    cli_options: ClassVar[Mapping[str, str]] = {"--target": "target", "--smiles-column": "smiles_column",
                                                "--split": "split"}
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "epochs": 50, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.04,
        "clip_grad_norm": None, "deterministic": True, "monitor": "val_loss", "monitor_mode": "min",
    }

    model: str = "medical/dmpnn.chemprop"
    data: str = "medical/solubility"
    pretrained: bool = True  # start from the model's weights where it has some; a model without (the default) starts fresh
    target: str | None = None
    smiles_column: str | None = None
    task_type: str = "regression"
    split: str = "auto"
    val_fraction: float = bounded(0.1, "[0, 1)")
    test_fraction: float = bounded(0.1, "[0, 1)")
    standardize: bool = True
    skip_invalid: bool = False
    descriptors: bool = False
    descriptor_scaling: str = "standard"
    max_train_molecules: int | None = bounded(None, "[1, inf)")
    depth: int | None = bounded(None, "[1, 10]")
    hidden: int | None = bounded(None, "[1, 4096]")
    readout: str | None = None
    dropout: float | None = bounded(None, "[0, 1)")
    ffn_layers: int | None = bounded(None, "[0, 10]")
    num_threads: int | None = bounded(None, "[1, inf)")
    ensemble_size: int = bounded(1, "[1, 100]")  # > 1: that many seeds, saved as one model averaging them

    def __post_init__(self):
        super().__post_init__()
        if self.task_type not in TASK_TYPES:
            raise InputError(f"task_type must be one of {TASK_TYPES}, got {self.task_type!r}")
        if self.descriptor_scaling not in DESCRIPTOR_SCALINGS:
            raise InputError(f"descriptor_scaling must be one of {DESCRIPTOR_SCALINGS}, got {self.descriptor_scaling!r}")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        import torch

        from backends.seed import set_deterministic

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        set_deterministic(self.train.deterministic)
        data = self.load_data()
        train_mols, train_y = data.part("train")
        if self.max_train_molecules is not None and len(train_mols) > self.max_train_molecules:
            keep = np.sort(np.random.default_rng(self.seed).choice(len(train_mols), self.max_train_molecules, replace=False))
            train_mols, train_y = [train_mols[i] for i in keep], train_y[keep]
        check_targets(train_y, data.table.target_names, self.task_type)
        out_dir = Path(out_dir)
        if self.ensemble_size == 1:
            model, trainer, parts = self.train_member(data, train_mols, train_y, self.seed, out_dir, resume, progress)
            return RecipeResult(out_dir, model.card.metrics)
        members, parts = [], None
        for seed in self.member_seeds():  # each member a loadable model of its own under members/
            model, trainer, parts = self.train_member(data, train_mols, train_y, seed, out_dir / "members" / f"seed_{seed}",
                                                      resume, progress, parts)
            members.append(model)
        from medical.molecules.ensemble import seed_ensemble

        ensemble = seed_ensemble(members, self.member_seeds())
        ensemble.card.metrics = self.score(trainer, ensemble, parts) + member_summaries(members, self.member_seeds())
        ensemble.save(out_dir)
        return RecipeResult(out_dir, ensemble.card.metrics)

    def member_seeds(self) -> list[int]:
        """The seeds of the ensemble's members: ``train.seed``, ``train.seed + 1``, ..."""
        return [self.seed + i for i in range(self.ensemble_size)]

    def train_member(self, data, train_mols: Sequence, train_y: np.ndarray, seed: int, out_dir: Path,
                     resume: bool | str, progress: bool, parts: tuple | None = None):
        """One network trained with ``seed`` and saved into ``out_dir``: (the model, its Trainer, the
        featurized (train, val, test) sets, made once and shared by an ensemble's members)."""
        import dataclasses

        from backends.seed import seed_everything
        from medical.molecules.featurize import Featurizer
        from zoo.train import Trainer

        seed_everything(seed)  # the fresh network's initial weights
        model = self.build_model(data, train_mols, train_y)
        featurizer = Featurizer(model.card.preprocessing)
        scaling = model.card.preprocessing.get("target_scaling") or {}
        mean, std = np.asarray(scaling.get("mean", 0.0)), np.asarray(scaling.get("std", 1.0))

        def dataset(mols, y):
            return MoleculeDataset([featurizer(m.mol) for m in mols], (y - mean) / std)

        if parts is None:
            parts = (dataset(train_mols, train_y),
                     dataset(*data.part("val")) if len(data.splits["val"]) else None,
                     dataset(*data.part("test")) if len(data.splits["test"]) else None)
        train, val, test = parts
        trainer = Trainer(
            model, train, val, config=dataclasses.replace(self.train_config(progress), seed=seed), out_dir=out_dir,
            loss_fn=MaskedLoss(self.task_type), collate_fn=Collate(featurizer),
            metrics_fn=Scores(self.task_type, data.table.target_names, mean, std),
            provenance={**self.provenance(data.fingerprint), "data_card": data.card, "seed": seed},
        )
        model.card.metrics = self.fit_and_score(trainer, test, resume)
        model.save(out_dir)
        return model, trainer, parts

    def score(self, trainer, model, parts: tuple) -> list[dict[str, Any]]:
        """The card metrics of ``model`` (an ensemble) on the val and test sets, by ``trainer``'s evaluation."""
        metrics = []
        for split, dataset in zip(("val", "test"), parts[1:]):
            if dataset is not None:
                metrics += card_metrics(trainer.evaluate(dataset, prefix=split, module=model), split, self.data)
        return metrics

    def load_data(self):
        """The data, split as the recipe says."""
        from medical.molecules.datasets import load_molecules

        return load_molecules(self.data, target=self.target, smiles_column=self.smiles_column,
                              val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed,
                              standardize=self.standardize, skip_invalid=self.skip_invalid,
                              split=None if self.split == "auto" else self.split)

    def build_model(self, data, train_mols: Sequence, train_y: np.ndarray):
        """A fresh network for the data's targets (or a saved model to continue), its card filled in."""
        from zoo.hub import build, info, load

        targets = list(data.table.target_names)
        card = info(self.model)
        if self.pretrained and card.files:  # a model with weights: continue from them and their scalings
            if self.ensemble_size > 1:
                raise InputError(f"{self.model} has weights, and an ensemble of {self.ensemble_size} seeds trains "
                                 "fresh networks: set pretrained=false, or ensemble_size=1 to train it further")
            model = load(self.model, device=self.train.device)
            if list(model.card.labels or []) != targets:
                raise InputError(f"{self.model} predicts {model.card.labels}; the data's targets are {targets}")
            model.card.metrics, model.card.provenance = [], {"finetune_from": self.model}
            return model
        inputs = INPUTS_OF.get(card.architecture)
        if inputs is None:
            raise InputError(f"{self.model} is a {card.architecture!r} model; molecular-property trains "
                             f"{', '.join(INPUTS_OF)}")
        preprocessing = {**card.preprocessing, "inputs": inputs, "standardize": self.standardize,
                         "standardization": dict(STANDARDIZATION) if self.standardize else None,
                         "max_heavy_atoms": MAX_HEAVY_ATOMS, "task_type": self.task_type,
                         "descriptors": (fit_descriptor_scaling(train_mols, self.descriptor_scaling)
                                         if self.descriptors else None)}
        if self.task_type == "regression":
            preprocessing["target_scaling"] = target_scaling(train_y)
        card.arch_args = self.arch_args(card.architecture, dict(card.arch_args), len(targets),
                                        len(preprocessing["descriptors"]["names"]) if self.descriptors else 0)
        card.preprocessing, card.labels = preprocessing, targets
        card.input = {"smiles": "one SMILES string per molecule"}
        card.metrics, card.provenance, card.files = [], {}, {}
        return build(card)  # fresh weights: the card pins no file

    def arch_args(self, architecture: str, args: dict, num_targets: int, num_descriptors: int) -> dict:
        """The model's architecture arguments with the recipe's overrides; one it lacks is an InputError."""
        from zoo.registry import get_registry, resolve_ref

        accepted = inspect.signature(resolve_ref(get_registry().architecture(architecture).builder)).parameters
        renamed = {"ffn_layers": "layers" if "layers" in accepted else "ffn_layers"}
        for key in ("depth", "hidden", "readout", "dropout", "ffn_layers"):
            value = getattr(self, key)
            if value is None:
                continue
            name = renamed.get(key, key)
            if name not in accepted:
                raise InputError(f"recipe field {key!r} does not apply to a {architecture!r} model")
            args[name] = value
        return {**args, "num_targets": num_targets, "num_descriptors": num_descriptors}


def check_targets(y: np.ndarray, names: Sequence[str], task_type: str) -> None:
    """InputError when a target has no value in train, or a classification target is not 0/1."""
    for t, name in enumerate(names):
        present = y[:, t][~np.isnan(y[:, t])]
        if not len(present):
            raise InputError(f"target {name!r} has no value in the train split")
        if task_type == "classification" and not np.isin(present, (0.0, 1.0)).all():
            raise InputError(f"classification target {name!r} must be 0 or 1, got values such as "
                             f"{sorted(set(present.tolist()) - {0.0, 1.0})[:3]}; use task_type=regression")


def target_scaling(y: np.ndarray) -> dict[str, list[float]]:
    """Each target's train mean and standard deviation (1 where it is constant), ignoring missing values."""
    mean = np.nanmean(y, axis=0)
    std = np.nanstd(y, axis=0)
    return {"mean": [float(m) for m in mean], "std": [float(s) if s > 0 else 1.0 for s in std]}


def fit_descriptor_scaling(mols: Sequence, method: str = "standard") -> dict[str, list]:
    """RDKit 2-D descriptor names with what scales them, fitted on the train molecules: ``standard``, their mean,
    standard deviation and the clip of scaled values; ``quantile``, each one's train quantiles (its CDF)."""
    from medical.molecules.featurize import descriptor_names, descriptors

    names = descriptor_names()
    raw = np.stack([descriptors(m.mol, names) for m in mols])
    raw[~np.isfinite(raw)] = np.nan
    if method == "quantile":
        with np.errstate(all="ignore"):
            quantiles = np.nanquantile(raw, np.linspace(0.0, 1.0, DESCRIPTOR_QUANTILES), axis=0).T
        quantiles = np.nan_to_num(quantiles)  # a descriptor never computed on train: every value ranks alike
        return {"names": names, "quantiles": [[float(f"{v:.6g}") for v in row] for row in quantiles]}
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return {"names": names, "mean": mean.tolist(), "std": std.tolist(), "clip": DESCRIPTOR_CLIP}


def member_summaries(members: Sequence, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Each card metric's mean over an ensemble's members (``rmse_member_mean``), with a 95% Student-t CI
    over the seeds and each member's value beside its seed."""
    from scipy import stats

    summaries = []
    for metric in members[0].card.metrics:
        values = [m.card.metric(metric["name"], metric["split"])["value"] for m in members]
        mean = float(np.mean(values))
        half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
        summaries.append({**metric, "name": f"{metric['name']}_member_mean", "value": round(mean, 6),
                          "ci95": [round(mean - half, 6), round(mean + half, 6)],
                          "members": [{"seed": s, "value": v} for s, v in zip(seeds, values)]})
    return summaries


class MoleculeDataset:
    """Featurized molecules and their (scaled) targets: ``ds[i]`` is ``(features, targets [T] float32)``."""

    def __init__(self, records: list, targets: np.ndarray):
        self.records, self.targets = records, np.asarray(targets, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        return self.records[index], self.targets[index]


class Collate:
    """A list of ``(features, targets)`` → (the network's keyword tensors, targets ``[B, T]``)."""

    def __init__(self, featurizer):
        self.featurizer = featurizer

    def __call__(self, items):
        import torch

        return self.featurizer.collate([f for f, _ in items]), torch.from_numpy(np.stack([t for _, t in items]))


class MaskedLoss:
    """Mean squared error (regression) or binary cross-entropy on logits (classification) over present targets."""

    def __init__(self, task_type: str):
        self.task_type = task_type

    def __call__(self, outputs, targets):
        import torch.nn.functional as F

        present = ~targets.isnan()
        filled = targets.nan_to_num(0.0)
        if self.task_type == "regression":
            errors = (outputs.float() - filled) ** 2
        else:
            errors = F.binary_cross_entropy_with_logits(outputs.float(), filled, reduction="none")
        return (errors * present).sum() / present.sum().clamp(min=1)


class Scores:
    """Eval metrics in the targets' units: RMSE, MAE, R² (regression) or AUC, accuracy (classification),
    averaged over targets, and per target (``rmse_NAME``) when there are several."""

    def __init__(self, task_type: str, names: Sequence[str], mean, std):
        self.task_type, self.names = task_type, list(names)
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def __call__(self, outputs, targets) -> dict[str, float]:
        predicted = outputs.float().cpu().numpy().astype(np.float64)
        truth = targets.float().cpu().numpy().astype(np.float64)
        if self.task_type == "regression":
            predicted, truth = predicted * self.std + self.mean, truth * self.std + self.mean
        per_target = [self._one(predicted[:, t], truth[:, t]) for t in range(truth.shape[1])]
        scores = {key: float(np.nanmean([s[key] for s in per_target])) for key in per_target[0]}
        if len(self.names) > 1:
            scores.update({f"{key}_{name}": s[key] for name, s in zip(self.names, per_target) for key in s})
        return scores

    def _one(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        present = ~np.isnan(truth)
        p, y = predicted[present], truth[present]
        if self.task_type == "regression":
            return regression_scores(p, y)
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
        return {"auc": auc, "accuracy": float(((p > 0) == (y > 0.5)).mean()) if len(y) else float("nan")}


def regression_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of predictions against the truth (NaN when there is nothing to score)."""
    if not len(truth):
        return {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    error = predicted - truth
    total = float(((truth - truth.mean()) ** 2).sum())
    return {"rmse": float(np.sqrt((error ** 2).mean())), "mae": float(np.abs(error).mean()),
            "r2": 1.0 - float((error ** 2).sum()) / total if total > 0 else float("nan")}
