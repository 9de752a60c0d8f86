"""Recipes: a dataclass of hyper-parameters plus the code that trains one task.

A recipe on the shared Trainer (:class:`TrainerRecipe`) holds the loop's
hyper-parameters as one field, ``train: TrainConfig``, over its own defaults
(``train_defaults``); its other fields say what is trained (model, data,
augmentation...). A recipe that runs its own loop (PPO, SAC) declares ``seed``
and its loop fields itself.

Overrides come from Python kwargs, a YAML file or ``--set key=value``; nested
fields are written ``train.lr`` on the command line and ``train: {lr: ...}`` in
YAML. The resolved recipe is written once into the trained model's card, so
``zoo reproduce`` can run it again. Flat keys of the train config (``lr=...``,
as recipes and cards had them before) still work, with a ``FutureWarning``
naming the new key.

Numeric fields declare the range they accept with :func:`bounded`
(``val_fraction: float = bounded(0.1, "[0, 1)")``); every recipe checks its values
against those ranges when it is made, however the values came, so a value out of
range is an :class:`~zoo.errors.InputError` naming the field, the range and the value.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
import warnings
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from zoo.card import WEIGHTS_FILE
from zoo.errors import InputError
from zoo.hashing import sha256_file


@dataclass(frozen=True)
class Interval:
    """A range of numbers written as in mathematics: ``[0, 1)``, ``(0, inf)``, ``[1, inf)``.

    NaN is in no interval; ``inf`` is in one only when that end is closed.
    """

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> "Interval":
        try:
            opening, closing = text[0], text[-1]
            low, high = (float(part) for part in text[1:-1].split(","))
        except ValueError:
            raise ValueError(f"expected an interval such as '[0, 1)', got {text!r}") from None
        if opening not in "[(" or closing not in "])" or not low <= high:
            raise ValueError(f"expected an interval such as '[0, 1)', got {text!r}")
        return cls(low, high, opening == "[", closing == "]")

    def __contains__(self, value: float) -> bool:
        above = self.low <= value if self.low_closed else self.low < value
        below = value <= self.high if self.high_closed else value < self.high
        return above and below  # both False for NaN

    def __str__(self) -> str:
        def show(end: float) -> str:
            return str(int(end)) if math.isfinite(end) and end == int(end) else str(end)

        return f"{'[' if self.low_closed else '('}{show(self.low)}, {show(self.high)}{']' if self.high_closed else ')'}"


def bounded(default: Any, *intervals: str) -> Any:
    """A recipe field whose numbers must lie in ``intervals``.

    One interval bounds the number, or every item of a tuple; several give one per item
    (and so the tuple's length). ``None`` stays allowed where the type allows it.
    """
    return dataclasses.field(default=default, metadata={"range": tuple(Interval.parse(i) for i in intervals)})


def check_ranges(obj: Any, prefix: str = "") -> None:
    """InputError naming the first field of ``obj`` (a recipe or a config; ``prefix`` + its name) whose value
    lies outside its declared range."""
    for f in dataclasses.fields(obj):
        check_range(f, getattr(obj, f.name), prefix + f.name)


def check_range(f: dataclasses.Field, value: Any, name: str) -> None:
    """InputError when ``value`` lies outside the range declared on field ``f`` (called ``name``)."""
    intervals = f.metadata.get("range")
    if not intervals or value is None:
        return
    several = isinstance(value, (tuple, list))
    items = tuple(value) if several else (value,)
    if len(intervals) > 1 and len(items) != len(intervals):
        raise InputError(f"recipe field {name!r} expects {len(intervals)} numbers, got {value!r}")
    for index, (item, interval) in enumerate(zip(items, intervals if len(intervals) > 1 else intervals * len(items))):
        if isinstance(item, bool) or not isinstance(item, numbers.Real) or item not in interval:
            what = f"item {index} of recipe field {name!r}" if several else f"recipe field {name!r}"
            raise InputError(f"{what} must be in {interval}, got {value!r}; choose a value in that range")


@dataclass
class TrainConfig:
    """Hyper-parameters of the shared training loop (:class:`zoo.train.Trainer`); a recipe composes one as
    its ``train`` field and owns the model/data ones."""

    epochs: int = bounded(10, "[1, inf)")
    batch_size: int = bounded(64, "[1, inf)")
    lr: float = bounded(1e-3, "[0, inf)")  # 0 trains nothing: a baseline, or a test of the loop
    weight_decay: float = bounded(0.05, "[0, inf)")
    warmup_ratio: float = bounded(0.05, "[0, 1)")  # fraction of total optimizer steps spent in linear warm-up
    schedule: str = "cosine"  # "cosine" | "linear" (decay to 0, as BERT fine-tuning) | "constant"
    grad_accum_steps: int = bounded(1, "[1, inf)")
    clip_grad_norm: float | None = bounded(1.0, "[0, inf)")  # 0 or None: no clipping
    precision: str = "fp32"  # "auto" | "fp32" | "bf16" | "fp16"
    device: str = "auto"
    seed: int = bounded(0, "[0, 4294967296)")
    deterministic: bool = False
    monitor: str = "val_loss"  # a key of the eval dict
    monitor_mode: str = "min"  # "min" | "max"
    early_stopping_patience: int | None = bounded(None, "[1, inf)")  # epochs without improvement
    checkpoint_every_steps: int = bounded(0, "[0, inf)")  # 0 = at the end of each epoch only
    keep_checkpoints: int = bounded(1, "[1, inf)")  # the newest N checkpoints stay; 1 is all an exact resume needs
    num_workers: int = bounded(0, "[0, inf)")
    progress: bool = True
    log_every_steps: int = bounded(10, "[0, inf)")  # a "train" line in metrics.jsonl every N optimizer steps (0: none)
    ema_decay: float | None = bounded(None, "[0, 1)")  # keep an exponential moving average of the weights
    # Convolution weights in channels-last (NHWC) memory, as timm's --channels-last: EfficientNet-Lite0's
    # training step runs 3.2x faster at 32 px on a 2-core CPU (python -m benchmarks.train_step_mfu).
    channels_last: bool = False
    # A wall-time budget: training ends at the first optimizer step past it (then scored and saved as at a
    # normal end); a resume gets what its checkpoint had left. Counts evaluation and checkpoint time too.
    max_minutes: float | None = bounded(None, "(0, inf)")

    def __post_init__(self):
        check_ranges(self)
        if self.schedule not in ("cosine", "linear", "constant"):
            raise InputError(f"schedule must be 'cosine', 'linear' or 'constant', got {self.schedule!r}")
        if self.monitor_mode not in ("min", "max"):
            raise InputError(f"monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")


@dataclass
class RecipeResult:
    """What a recipe run produced: a loadable model directory and its metrics."""

    out_dir: Path
    metrics: list[dict[str, Any]]


class _RecipeType(ABCMeta):
    """Maps flat keys of a nested config in Python kwargs (``lr=...``) to the nested field, with a warning."""

    def __call__(cls, *args, **kwargs):
        return super().__call__(*args, **_grouped(cls, _dotted(cls, kwargs)))


@dataclass
class Recipe(metaclass=_RecipeType):
    """Base of every task recipe; subclasses add hyper-parameter fields and ``run``.

    A recipe that runs its own loop declares ``seed`` (and ``keep_checkpoints`` when it checkpoints);
    one on the shared Trainer subclasses :class:`TrainerRecipe`.
    """

    name: ClassVar[str]
    #: Command-line shorthands for fields, e.g. ``{"--text-column": "text_column"}`` (``zoo finetune`` takes them).
    cli_options: ClassVar[Mapping[str, str]] = {}
    # Fields (``train.keep_checkpoints`` for nested ones) that say how to run, not what is trained: not
    # recorded, and a resume may change them.
    run_options: ClassVar[tuple[str, ...]] = ("keep_checkpoints",)

    def __post_init__(self):
        check_ranges(self)

    @abstractmethod
    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        """Train, evaluate, and write a loadable model into ``out_dir``."""

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters, nested as the fields are: every field but the run options (what the card
        records, what a resume compares)."""
        params = dataclasses.asdict(self)
        for option in self.run_options:
            *parents, key = option.split(".")
            level = params
            for parent in parents:
                level = level.get(parent, {})
            level.pop(key, None)
        return params

    def provenance(self, data_fingerprint: str) -> dict[str, Any]:
        """What the card records so the model can be reproduced."""
        import torch

        from zoo.envinfo import fingerprint

        env = fingerprint()
        return {
            "recipe": {"name": self.name, "params": self.to_dict()},
            "data_fingerprint": data_fingerprint,
            "seed": self.seed,
            # CPU kernels sum in an order that depends on the thread count: reproduce runs with the same.
            "code_version": {"domain_zoo": env.get("domain_zoo"), "git_commit": env.get("git_commit"),
                             "torch": env.get("torch"), "torch_threads": torch.get_num_threads()},
        }

    @classmethod
    def from_overrides(cls, *layers: Mapping[str, Any] | None, config_file: str | Path | None = None):
        """Defaults, then a YAML file, then each of ``layers`` in order. A layer's keys are field names,
        ``train.lr`` for a nested field, or a nested mapping (``{"train": {"lr": ...}}``); strings are parsed
        to each field's type."""
        values: dict[str, Any] = {}
        for layer in (read_config(config_file), *layers):
            values.update(_dotted(cls, layer or {}))
        fields = field_names(cls)
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InputError(f"recipe {cls.name!r} has no field(s) {unknown}; its fields are {sorted(fields)}")
        return cls(**_grouped(cls, {key: coerce(value, fields[key], key) for key, value in values.items()}))

    @classmethod
    def field_key(cls, name: str) -> str:
        """The key of field ``name``: itself when the recipe has it, else its key in a nested config
        (``lr`` → ``train.lr``), else ``name`` (which the recipe then refuses)."""
        if name in _fields_of(cls):
            return name
        return next((f"{nest}.{name}" for nest, config in _nested(cls).items() if name in _fields_of(config)), name)


@dataclass
class TrainerRecipe(Recipe):
    """A recipe on the shared :class:`~zoo.train.Trainer`: ``train`` holds the loop's hyper-parameters.

    ``train`` is given as a :class:`TrainConfig`, or as a mapping of the TrainConfig fields to change
    from the recipe's ``train_defaults`` (``{"lr": 3e-4}``), which is how YAML, ``--set train.lr=3e-4``
    and cards give it. ``seed`` is ``train.seed``.
    """

    #: The recipe's own defaults for TrainConfig fields (e.g. a higher lr, the metric to monitor).
    train_defaults: ClassVar[Mapping[str, Any]] = {}
    run_options: ClassVar[tuple[str, ...]] = ("train.keep_checkpoints", "train.progress")

    train: TrainConfig | Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.train, TrainConfig):
            values = {**self.train_defaults, **self.train}
            config_fields = _fields_of(TrainConfig)
            unknown = sorted(set(values) - set(config_fields))
            if unknown:
                raise InputError(f"recipe {self.name!r}: TrainConfig has no field(s) {unknown}; "
                                 f"its fields are {sorted(config_fields)}")
            for key, value in values.items():
                check_range(config_fields[key], value, f"train.{key}")
            self.train = TrainConfig(**values)
        super().__post_init__()

    @property
    def seed(self) -> int:
        return self.train.seed

    def to_dict(self) -> dict[str, Any]:
        params = super().to_dict()
        params["train"] = params.pop("train")  # after what is trained, as cards read best
        return params

    def train_config(self, progress: bool) -> TrainConfig:
        """The Trainer's config for a run (``progress``: whether it reports to a person)."""
        return dataclasses.replace(self.train, progress=progress)

    def fit_and_score(self, trainer, test, resume: bool | str) -> list[dict[str, Any]]:
        """Fit, then the card's metrics: the best epoch's on val, and on ``test`` when the data has one."""
        result = trainer.fit(resume=resume)
        metrics = card_metrics(result.best_metrics, "val", self.data)
        if test is not None:
            metrics += card_metrics(trainer.evaluate(test, prefix="test"), "test", self.data)
        return metrics


def field_names(recipe_cls: type[Recipe]) -> dict[str, Any]:
    """Every settable key of a recipe with its type: top-level fields and ``train.lr``-style nested ones."""
    hints = typing.get_type_hints(recipe_cls)
    nested = _nested(recipe_cls)
    keys = {name: hints[name] for name in _fields_of(recipe_cls) if name not in nested}
    for nest, config in nested.items():
        config_hints = typing.get_type_hints(config)
        keys.update({f"{nest}.{name}": config_hints[name] for name in _fields_of(config)})
    return keys


def _fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _nested(recipe_cls: type) -> dict[str, type]:
    """The recipe's fields that hold a config dataclass (``{"train": TrainConfig}``)."""
    return {"train": TrainConfig} if issubclass(recipe_cls, TrainerRecipe) else {}


def _dotted(recipe_cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with nested mappings as dotted keys (``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``);
    flat keys of a nested config (``lr``) are mapped to theirs with a FutureWarning naming the new key."""
    nested = _nested(recipe_cls)
    dotted, moved = {}, []
    for key, value in values.items():
        if key in nested and isinstance(value, Mapping):
            dotted.update({f"{key}.{name}": item for name, item in value.items()})
        elif key in nested and isinstance(value, nested[key]):
            dotted.update({f"{key}.{name}": item for name, item in dataclasses.asdict(value).items()})
        else:
            new_key = recipe_cls.field_key(key) if "." not in key else key
            if new_key != key:
                moved.append(f"{key} -> {new_key}")
            dotted[new_key] = value
    if moved:
        warnings.warn(f"recipe {recipe_cls.name!r}: flat keys of its train config are deprecated; write them nested "
                      f"({', '.join(moved)}; in YAML under 'train:')", FutureWarning, stacklevel=3)
    return dotted


def _grouped(recipe_cls: type, dotted: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys back into nested mappings (``{"train.lr": 1}`` → ``{"train": {"lr": 1}}``)."""
    grouped: dict[str, Any] = {}
    for key, value in dotted.items():
        nest, dot, name = key.partition(".")
        if dot and nest in _nested(recipe_cls):
            grouped.setdefault(nest, {})[name] = value
        else:
            grouped[key] = value
    return grouped


def read_config(config_file: str | Path | None) -> dict[str, Any]:
    """The recipe fields of a YAML file (``{}`` for none); an unreadable file or not a mapping is an InputError."""
    if config_file is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"expected a YAML file of recipe fields at {config_file}: {exc}") from None
    if not isinstance(loaded, dict):
        raise InputError(f"expected a mapping of recipe fields in {config_file}, got {type(loaded).__name__}")
    return loaded


def card_metrics(values: dict[str, float], split: str, dataset: str) -> list[dict[str, Any]]:
    """Trainer eval results (``{"test_accuracy": .9, "test_loss": ...}``) as card metric entries, loss left out."""
    prefix = f"{split}_"
    return [
        {"name": key[len(prefix):], "value": round(float(value), 6), "dataset": dataset, "split": split}
        for key, value in values.items()
        if key.startswith(prefix) and key != f"{prefix}loss"
    ]


def parse_set(assignments: list[str]) -> dict[str, str]:
    """``["epochs=3", "lr=1e-3"]`` → ``{"epochs": "3", "lr": "1e-3"}``."""
    parsed = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected --set key=value, got {item!r}")
        parsed[key.strip().replace("-", "_")] = value
    return parsed


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Turn a CLI/YAML value into the field's declared type, or say what was expected."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
        if type(None) in options:
            return None
        raise InputError(f"recipe field {name!r} expects {_type_name(hint)}, got None")
    for option in options:
        if option is type(None):
            continue
        converted = _convert(value, option)
        if converted is not _FAIL:
            return converted
    raise InputError(f"recipe field {name!r} expects {_type_name(hint)}, got {value!r}")


_FAIL = object()
_BOOLS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


def _convert(value: Any, option: Any) -> Any:
    origin = typing.get_origin(option) or option
    if option is bool:
        if isinstance(value, bool):
            return value
        return _BOOLS.get(str(value).lower(), _FAIL)
    if option in (int, float):
        if isinstance(value, bool):
            return _FAIL
        try:
            number = option(value)
        except (TypeError, ValueError):
            return _FAIL
        return number if option is float or float(value) == number else _FAIL
    if option is str:
        return value if isinstance(value, str) else _FAIL
    if origin in (tuple, list, dict):  # from the command line as YAML: [1, 2] or {hidden_size: 64}
        try:
            items = yaml.safe_load(value) if isinstance(value, str) else value
        except yaml.YAMLError:
            return _FAIL
        if not isinstance(items, dict if origin is dict else (list, tuple)):
            return _FAIL
        return origin(items)
    return value if isinstance(value, option) else _FAIL


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def finetune_recipe(card: Any, overrides: Mapping[str, Any], config_file: str | Path | None = None,
                    recipe_name: str | None = None) -> Recipe:
    """The recipe ``zoo finetune`` runs on a model: ``recipe_name`` if given, else the recipe its card
    records (with the recorded hyper-parameters as defaults, so a model is tuned as it was trained),
    else the one its task names; then ``config_file``, then ``overrides``."""
    recipe_cls, recorded = finetune_recipe_class(card, recipe_name)
    return recipe_cls.from_overrides(recorded, read_config(config_file), overrides)


def finetune_recipe_class(card: Any, recipe_name: str | None = None) -> tuple[type[Recipe], dict[str, Any]]:
    """The recipe class :func:`finetune_recipe` uses, and the recorded hyper-parameters it starts from."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    recorded = (card.provenance.get("recipe") or {}) if recipe_name is None else {}
    name = recorded.get("name") or recipe_name or registry.task(card.task).recipe
    if name is None:
        raise InputError(f"{card.id} records no recipe and its task {card.task!r} names none: choose one with "
                         f"--recipe ({', '.join(sorted(registry.recipes))})")
    spec = registry.recipe(name)
    task = registry.task(card.task)
    trainable = (task.name, task.task_with_head(1))  # a headless encoder is trained with a fresh head
    if spec.task not in trainable:
        fitting = sorted(r.name for r in registry.recipes.values() if r.task in trainable)
        raise InputError(f"recipe {name!r} trains {spec.task} models and {card.id} is a {card.task} model; "
                         f"its recipes: {', '.join(fitting) or 'none'}")
    return resolve_ref(spec.recipe), dict(recorded.get("params", {}))


def task_recipe_class(task: str | None, recipe_name: str | None = None) -> type[Recipe]:
    """The recipe that trains ``task``'s default model (``zoo finetune --task TASK``): ``recipe_name`` or
    the task's own."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if task is None:
        raise InputError("zoo finetune needs a model ID, or --task TASK to train that task's default model")
    name = recipe_name or registry.task(task).recipe
    if name is None:
        raise InputError(f"task {task!r} names no default recipe; give a model ID (zoo list --task {task})")
    spec = registry.recipe(name)
    if spec.task != task:
        raise InputError(f"recipe {name!r} trains {spec.task} models, not {task}")
    return resolve_ref(spec.recipe)


def parse_cli_options(recipe_cls: type[Recipe], args: list[str]) -> tuple[dict[str, str], list[str]]:
    """A recipe's own command-line options (``--text-column review`` or ``--text-column=review``) as
    field overrides, and the arguments that are not options. An unknown option is an InputError."""
    overrides, positional, tokens = {}, [], list(args)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--"):
            positional.append(token)
            continue
        option, has_value, value = token.partition("=")
        if option not in recipe_cls.cli_options:
            known = ", ".join(sorted(recipe_cls.cli_options)) or "none"
            raise InputError(f"no such option: {option} (the {recipe_cls.name!r} recipe takes {known}; "
                             f"any field with --set FIELD=VALUE)")
        if not has_value:
            if not tokens:
                raise InputError(f"option {option} needs a value")
            value = tokens.pop(0)
        overrides[recipe_cls.cli_options[option]] = value
    return overrides, positional


@dataclass
class Reproduction:
    """What :func:`reproduce` found: a row per card metric (card and reproduced values, their difference,
    the accepted range, whether it matches) and the sha256 of the card's weights and of the retrained ones."""

    rows: list[dict[str, Any]]
    card_weights: str | None
    weights: str | None

    @property
    def identical(self) -> bool:
        """Whether retraining gave the very same bytes (same code, torch, CPU kernels and thread count)."""
        return self.weights is not None and self.weights == self.card_weights


def reproduce(model_id: str, out_dir: str | Path, progress: bool = True) -> Reproduction:
    """Retrain a model from its card's recipe, with the thread count it records, and compare with the card."""
    from zoo.hub import info
    from zoo.registry import get_registry, resolve_ref

    card = info(model_id)
    recorded = card.provenance.get("recipe")
    if not recorded:
        raise InputError(f"the card of {model_id} records no recipe, so it cannot be reproduced")
    recipe_cls = resolve_ref(get_registry().recipe(recorded["name"]).recipe)
    recipe = recipe_cls.from_overrides(recorded["params"])
    with _torch_threads(card.provenance.get("code_version", {}).get("torch_threads")):
        result = recipe.run(out_dir, progress=progress)
    rows = []
    for metric in card.metrics:
        new = next((m for m in result.metrics if m["name"] == metric["name"] and m["split"] == metric["split"]), None)
        if new is not None:
            low, high = _accepted_range(metric)
            rows.append({
                "metric": metric["name"],
                "split": metric["split"],
                "card": metric["value"],
                "reproduced": new["value"],
                "diff": new["value"] - metric["value"],
                "accepted": [low, high],
                "ok": low <= new["value"] <= high,
            })
    return Reproduction(rows, card.files.get(WEIGHTS_FILE, {}).get("sha256"), _weights_sha256(result.out_dir))


@contextmanager
def _torch_threads(threads: int | None):
    """Run with ``threads`` torch CPU threads (when given), then restore the count."""
    import torch

    before = torch.get_num_threads()
    if isinstance(threads, int) and threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _weights_sha256(run_dir: Path) -> str | None:
    path = Path(run_dir) / WEIGHTS_FILE
    return sha256_file(path) if path.is_file() else None


def _accepted_range(metric: Mapping[str, Any]) -> tuple[float, float]:
    """Where a reproduced value matches the card: inside the card's 95% CI when it has one, else within
    0.01 or 1% of the value, whichever is larger (kernels differ a little between CPUs)."""
    ci = metric.get("ci95")
    if ci and ci[0] != ci[1]:
        return float(ci[0]), float(ci[1])
    slack = max(0.01, 0.01 * abs(metric["value"]))
    return metric["value"] - slack, metric["value"] + slack
