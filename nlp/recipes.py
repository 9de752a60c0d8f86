"""NLP recipes on the shared Trainer: fine-tune a text classifier, or probe frozen embeddings.

Both take a registered dataset id (``nlp/tweets-sentiment``) or your own labelled
CSV/TSV/JSONL file (``text_column``, ``label_column``, optional ``text_pair_column``;
see :mod:`nlp.datasets` for how empty rows, duplicates and bad bytes are handled) and
write a loadable zoo model whose ``predict`` takes raw strings.

``text-classification`` (also what ``zoo finetune`` runs for a sentence encoder):
AdamW with linear warm-up and decay, the encoder at ``lr`` and the new head at
``head_lr``; dynamic padding and length-bucketed batches (texts of similar length
share a batch, so little compute goes to padding); ``max_length`` truncation (the
count is logged); ``class_weights="balanced"`` for imbalanced labels;
``freeze_encoder`` trains only the head.

``embedding-probe``: embeds every text once with the frozen encoder, fits
scikit-learn's logistic regression, and writes its coefficients as the linear head
of a text classifier (the same model type the fine-tune writes).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from zoo.errors import InputError
from zoo.recipes import Recipe, RecipeResult, TrainerRecipe, bounded
from zoo.train import ResumableBatchSampler

log = logging.getLogger("nlp")

_GENERIC_LABEL = re.compile(r"^class_\d+$")
PROBE_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass
class TextDataRecipe(Recipe):
    """The model and labelled-text fields every NLP recipe shares; subclasses add training fields and ``run``."""

    cli_options: ClassVar[Mapping[str, str]] = {"--text-column": "text_column", "--label-column": "label_column"}

    model: str = "nlp/text_encoder.all_minilm_l6_v2"
    data: str = "nlp/tweets-sentiment"
    val_data: str | None = None
    test_data: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    encoding: str = "utf-8"
    val_fraction: float = bounded(0.1, "[0, 1)")
    test_fraction: float = bounded(0.0, "[0, 1)")
    max_train_samples: int | None = bounded(None, "[1, inf)")
    max_eval_samples: int | None = bounded(None, "[1, inf)")
    pretrained: bool = True


@dataclass
class TextClassificationRecipe(TrainerRecipe, TextDataRecipe):
    """Fine-tune a text classifier (full, or frozen encoder + head) on a dataset id or a labelled file.

    A model that already classifies keeps its head and labels, and data with a label
    outside them is an error, unless ``new_head`` (a fresh head for the data's labels).
    A sentence encoder gets a new linear head for the data's labels. The encoder
    trains at ``train.lr``, the head at ``head_lr``.
    """

    name: ClassVar[str] = "text-classification"
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "epochs": 3, "batch_size": 32, "lr": 5e-5, "weight_decay": 0.01, "warmup_ratio": 0.1, "schedule": "linear",
        "precision": "auto", "monitor": "val_macro_f1", "monitor_mode": "max",
    }

    new_head: bool = False
    freeze_encoder: bool = False
    head_lr: float = bounded(1e-2, "(0, inf)")
    max_length: int | None = bounded(None, "[2, inf)")
    class_weights: str = "balanced"
    length_bucketing: bool = True

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        from backends.seed import seed_everything, set_deterministic
        from zoo.metrics import classification_metrics
        from zoo.train import Trainer

        _check_choice("class_weights", self.class_weights, ("none", "balanced"))
        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        model, splits = _model_and_data(self, new_head=self.new_head)
        if self.freeze_encoder:
            _freeze_encoder(model.net)
        adapter = model.adapter
        train = _encoded(adapter, splits.train, "training texts")
        val = _encoded(adapter, splits.val, "validation texts", sort=True) if splits.val is not None else None
        weights = _class_weights(splits.train.labels, len(splits.classes)) if self.class_weights == "balanced" else None
        sampler_fn = None
        if self.length_bucketing:
            from functools import partial

            sampler_fn = partial(LengthBucketSampler, lengths=[len(e) for e, _ in train])
        trainer = Trainer(
            model,
            train,
            val,
            config=self.train_config(progress),
            out_dir=out_dir,
            loss_fn=WeightedCrossEntropy(weights),
            metrics_fn=classification_metrics,
            collate_fn=adapter.collate,
            optimizer_fn=lambda module: _optimizer(module, self),
            sampler_fn=sampler_fn,
            provenance={**self.provenance(splits.fingerprint), "data_report": splits.report},
        )
        test = _encoded(adapter, splits.test, "test texts", sort=True) if splits.test is not None else None
        model.card.metrics = metrics = self.fit_and_score(trainer, test, resume)
        if trainer.env.is_main:  # under torchrun every rank gets here; one writes
            model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)


@dataclass
class EmbeddingProbeRecipe(TextDataRecipe):
    """Frozen sentence embeddings + logistic regression, saved as a text classifier's linear head.

    ``C`` (inverse regularisation) is picked on the validation split from a small grid
    when not given.
    """

    name: ClassVar[str] = "embedding-probe"

    seed: int = bounded(0, "[0, 4294967296)")
    C: float | None = bounded(None, "(0, inf)")
    class_weights: str = "balanced"
    max_iter: int = bounded(2000, "[1, inf)")
    batch_size: int = bounded(64, "[1, inf)")
    max_length: int | None = bounded(None, "[2, inf)")
    device: str = "auto"

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        from backends.seed import seed_everything
        from zoo.hub import info, load

        _check_choice("class_weights", self.class_weights, ("none", "balanced"))
        seed_everything(self.seed)
        task = info(self.model).task
        if task != "sentence-embedding":
            raise InputError(f"embedding-probe needs a sentence-embedding model, got {self.model} (task {task!r})")
        splits = _splits(self, labels=None)
        model = load(self.model, pretrained=self.pretrained, num_classes=len(splits.classes), device=self.device)
        _apply_max_length(model, self.max_length)
        features = {}
        for name in ("train", "val", "test"):
            dataset = getattr(splits, name)
            if dataset is not None:
                features[name] = embed(model, dataset.inputs(), batch_size=self.batch_size, what=f"{name} texts")
        classifier, chosen, search = _fit_probe(self, features, splits)
        model.card.labels = list(splits.classes)
        set_linear_head(model.net, classifier, len(splits.classes))
        metrics = []
        for name in ("val", "test"):
            if name in features:
                logits = head_logits(model.net, features[name])
                values = metrics_from_logits(logits, getattr(splits, name).labels)
                metrics += [{"name": k, "value": round(v, 6), "dataset": self.data, "split": name} for k, v in values.items()]
        model.card.metrics = metrics
        model.card.provenance = {
            **self.provenance(splits.fingerprint),
            "data_report": splits.report,
            "probe": {"C": chosen, "search": search, "solver": "lbfgs", "class_weight": self.class_weights,
                      "train_size": int(len(splits.train))},
            "finetune_from": self.model,
        }
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)


# -- evaluation ---------------------------------------------------------------------
def embed(model, texts, *, batch_size: int = 64, what: str = "texts") -> np.ndarray:
    """Sentence embeddings from a text encoder's pooling, also when it carries a head (``[n, dim]`` float32)."""
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, **inputs):
            return self.net.embed(**inputs)

    if not hasattr(model.net, "embed"):
        raise InputError(f"{model.card.id} has no sentence-embedding pooling (architecture {model.card.architecture!r})")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return model.adapter.run(Embedder(model.net), model.adapter.encode(texts, what=what), batch_size,
                                     device=model.device).numpy()
    finally:
        model.train(was_training)


def evaluate(
    model,
    data,
    *,
    split: str = "test",
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    encoding: str = "utf-8",
    batch_size: int = 64,
) -> dict[str, float]:
    """Accuracy and macro-F1 of a text classifier on a labelled file, a dataset id's ``split``, or a TextDataset.

    Labels the model does not know are an :class:`InputError` naming them.
    """
    import torch

    from nlp.datasets import TextDataset, labelled_file, load_splits
    from zoo.hub import load

    if isinstance(model, (str, Path)):
        model = load(model)
    if model.card.task != "text-classification" or not model.card.labels:
        raise InputError(f"evaluate needs a text classifier with labels, got task {model.card.task!r}")
    if isinstance(data, TextDataset):
        dataset = data
    elif Path(str(data)).is_file():
        dataset, _ = labelled_file(data, model.card.labels, text_column=text_column, label_column=label_column,
                                   text_pair_column=text_pair_column, encoding=encoding)
    else:
        dataset = load_splits(str(data), labels=model.card.labels).split(split)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model.adapter.run(model.net, model.adapter.encode(dataset.inputs()), batch_size, device=model.device)
    finally:
        model.train(was_training)
    return {**metrics_from_logits(logits, dataset.labels), "n": float(len(dataset))}


# -- batching -----------------------------------------------------------------------
class LengthBucketSampler(ResumableBatchSampler):
    """Shuffled batches of texts of similar length: little compute goes to padding.

    Each epoch takes the base sampler's shuffled order (so DDP sharding and resume
    work the same), sorts it by length within windows of ``bucket_batches`` batches,
    cuts the windows into batches and shuffles the batch order; all of it
    deterministic in (seed, epoch). The number of batches is the base sampler's.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, *,
                 lengths: Sequence[int], bucket_batches: int = 50):
        super().__init__(n, batch_size, seed, rank, world_size)
        if len(lengths) != n:
            raise InputError(f"expected one length per example, got {len(lengths)} for {n} examples")
        self.lengths = list(lengths)
        self.bucket_batches = bucket_batches

    def epoch_batches(self) -> list[list[int]]:
        import torch

        indices = self._indices()
        window = self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, len(indices), window):
            part = sorted(indices[start : start + window], key=self.lengths.__getitem__)
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(self.seed + self.epoch + 7919))
        return [batches[i] for i in order.tolist()]

    def __iter__(self):
        batches = self.epoch_batches()
        yield from batches[self.start_batch :]


class EncodedDataset:
    """Tokenized examples: ``ds[i]`` is ``(Encoded, label)`` for the adapter's ``collate``."""

    def __init__(self, encoded: list, labels: np.ndarray):
        self.encoded, self.labels = encoded, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int):
        return self.encoded[index], int(self.labels[index])


class WeightedCrossEntropy:
    """Cross-entropy with optional per-class weights (moved to the logits' device on use)."""

    def __init__(self, weights=None):
        self.weights = weights

    def __call__(self, outputs, targets):
        import torch.nn.functional as F

        weight = None if self.weights is None else self.weights.to(outputs.device, outputs.dtype)
        return F.cross_entropy(outputs, targets, weight=weight)


# -- helpers ------------------------------------------------------------------------
def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise InputError(f"recipe field {name!r} must be one of {list(options)}, got {value!r}")


def _splits(recipe, labels):
    from nlp.datasets import load_splits

    splits = load_splits(
        recipe.data,
        text_column=recipe.text_column,
        label_column=recipe.label_column,
        text_pair_column=recipe.text_pair_column,
        encoding=recipe.encoding,
        val_data=recipe.val_data,
        test_data=recipe.test_data,
        val_fraction=recipe.val_fraction,
        test_fraction=recipe.test_fraction,
        labels=labels,
        seed=recipe.seed,
    )
    rng = np.random.default_rng(recipe.seed)
    for name, limit in (("train", recipe.max_train_samples), ("val", recipe.max_eval_samples), ("test", recipe.max_eval_samples)):
        dataset = getattr(splits, name)
        if dataset is not None and limit is not None and len(dataset) > limit:
            setattr(splits, name, dataset.subset(np.sort(rng.permutation(len(dataset))[:limit])))
            splits.report[f"{name}_used"] = limit
    if len(np.unique(splits.train.labels)) < 2:
        raise InputError(f"expected at least 2 classes in the training data of {recipe.data}, got {splits.classes}")
    return splits


def _fixed_labels(card, new_head: bool) -> list[str] | None:
    """The labels a classifier's head already has (None for an encoder, a generic head, or ``new_head``)."""
    if new_head or card.task != "text-classification" or not card.labels:
        return None
    if all(_GENERIC_LABEL.match(label) for label in card.labels):
        return None
    return list(card.labels)


def _model_and_data(recipe, new_head: bool):
    from zoo.hub import info, load

    fixed = _fixed_labels(info(recipe.model), new_head)
    try:
        splits = _splits(recipe, labels=fixed)
    except InputError as exc:
        if fixed is None or "does not know" not in str(exc):
            raise
        raise InputError(f"{exc} (fine-tuning {recipe.model} keeps its head's labels; "
                         "new_head=true, --set new_head=true, trains a fresh head instead)") from None
    options = {"task": "text-classification"} if str(recipe.model).startswith("hf:") else {}
    if fixed is not None:
        model = load(recipe.model, pretrained=recipe.pretrained, device=recipe.train.device, **options)
    else:
        model = load(recipe.model, pretrained=recipe.pretrained, num_classes=len(splits.classes),
                     device=recipe.train.device, **options)
        if new_head and hasattr(model.net, "reset_classifier"):
            model.net.reset_classifier(len(splits.classes))
        model.card.labels = list(splits.classes)
        model.card.metrics = []
    if model.card.task != "text-classification":
        raise InputError(f"{recipe.model} did not become a text classifier (task {model.card.task!r})")
    _apply_max_length(model, recipe.max_length)
    return model, splits


def _apply_max_length(model, max_length: int | None) -> None:
    """Truncate at ``max_length`` tokens from now on (recorded in the card); capped by the position embeddings."""
    if max_length is None:
        return
    limit = (model.card.arch_args.get("config") or {}).get("max_position_embeddings")
    length = int(min(max_length, limit)) if limit else int(max_length)
    model.card.preprocessing["max_length"] = length
    model.card.input = {**model.card.input, "max_length": length}
    model.adapter = type(model.adapter)(model.card, model.adapter.paths)


def _encoded(adapter, dataset, what: str, sort: bool = False) -> EncodedDataset:
    """Tokenize a split once; eval splits are sorted by length (less padding; order does not change metrics)."""
    encoded = adapter.encode(dataset.inputs(), what=what)
    labels = dataset.labels
    if sort:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        encoded, labels = [encoded[i] for i in order], labels[order]
    return EncodedDataset(encoded, labels)


def _class_weights(labels: np.ndarray, num_classes: int):
    """``n / (k * count_c)`` (scikit-learn's "balanced"); 1 for a class absent from training."""
    import torch

    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def _head_params(net) -> set[int]:
    getter = getattr(net, "get_classifier", None)
    head = getter() if getter else None
    return {id(p) for p in head.parameters()} if head is not None else set()


def _freeze_encoder(net) -> None:
    if hasattr(net, "freeze_encoder"):
        net.freeze_encoder()
        return
    head = _head_params(net)
    for param in net.parameters():
        param.requires_grad = id(param) in head


def _optimizer(module, recipe):
    """AdamW: the encoder at ``train.lr``, the head at ``head_lr``; biases and norms without weight decay."""
    import torch

    net = getattr(module, "net", module)
    head = _head_params(net)
    groups: dict[tuple[bool, bool], list] = {}
    for param in module.parameters():
        if param.requires_grad:
            groups.setdefault((id(param) in head, param.ndim > 1), []).append(param)
    return torch.optim.AdamW(
        [
            {"params": params, "lr": recipe.head_lr if is_head else recipe.train.lr,
             "weight_decay": recipe.train.weight_decay if decays else 0.0}
            for (is_head, decays), params in sorted(groups.items())
        ],
        lr=recipe.train.lr,
    )


def metrics_from_logits(logits, labels) -> dict[str, float]:
    import torch

    from zoo.metrics import classification_metrics

    logits = torch.as_tensor(np.asarray(logits) if not torch.is_tensor(logits) else logits).float()
    return classification_metrics(logits, torch.as_tensor(np.asarray(labels)))


def _fit_probe(recipe, features: dict, splits):
    """Logistic regression on the train embeddings; ``C`` from the grid by val macro-F1 unless given."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    weight = "balanced" if recipe.class_weights == "balanced" else None

    def fit(C):
        return LogisticRegression(C=C, max_iter=recipe.max_iter, class_weight=weight, random_state=recipe.seed).fit(
            features["train"], splits.train.labels)

    if recipe.C is not None or "val" not in features:
        C = 1.0 if recipe.C is None else float(recipe.C)
        return fit(C), C, []
    search, best = [], None
    for C in PROBE_C_GRID:
        classifier = fit(C)
        score = f1_score(splits.val.labels, classifier.predict(features["val"]), average="macro")
        search.append({"C": C, "val_macro_f1": round(float(score), 6)})
        if best is None or score > best[0]:
            best = (score, C, classifier)
    return best[2], best[1], search


def set_linear_head(net, classifier, num_classes: int) -> None:
    """Copy a fitted logistic regression into the linear head (2 classes: logits ``[0, w·x + b]``)."""
    import torch

    head = net.get_classifier()
    coef = np.asarray(classifier.coef_, dtype=np.float32)
    bias = np.asarray(classifier.intercept_, dtype=np.float32)
    if coef.shape[0] == 1 and num_classes == 2:
        coef = np.concatenate([np.zeros_like(coef), coef])
        bias = np.concatenate([np.zeros_like(bias), bias])
    if coef.shape != tuple(head.weight.shape):
        raise InputError(f"the probe has coefficients of shape {coef.shape}, the head {tuple(head.weight.shape)}: "
                         "every class must appear in the training data")
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(coef))
        head.bias.copy_(torch.from_numpy(bias))


def head_logits(net, embeddings: np.ndarray):
    import torch

    head = net.get_classifier()
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).to(head.weight.device)
        return head(x).cpu()

