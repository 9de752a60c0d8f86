"""Recipes: a dataclass of hyper-parameters plus the code that trains one task.

Overrides come from Python kwargs, a YAML file or ``--set key=value``; the
resolved recipe is written into the trained model's card, so ``zoo reproduce``
can run it again.

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
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from zoo.errors import InputError


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


def check_ranges(recipe: Any) -> None:
    """InputError naming the first field of ``recipe`` whose value lies outside its declared range."""
    for f in dataclasses.fields(recipe):
        intervals = f.metadata.get("range")
        value = getattr(recipe, f.name)
        if not intervals or value is None:
            continue
        several = isinstance(value, (tuple, list))
        items = tuple(value) if several else (value,)
        if len(intervals) > 1 and len(items) != len(intervals):
            raise InputError(f"recipe field {f.name!r} expects {len(intervals)} numbers, got {value!r}")
        for index, (item, interval) in enumerate(zip(items, intervals if len(intervals) > 1 else intervals * len(items))):
            if isinstance(item, bool) or not isinstance(item, numbers.Real) or item not in interval:
                what = f"item {index} of recipe field {f.name!r}" if several else f"recipe field {f.name!r}"
                raise InputError(f"{what} must be in {interval}, got {value!r}; choose a value in that range")


@dataclass
class RecipeResult:
    """What a recipe run produced: a loadable model directory and its metrics."""

    out_dir: Path
    metrics: list[dict[str, Any]]


@dataclass
class Recipe(ABC):
    """Base of every task recipe; subclasses add hyper-parameter fields and ``run``."""

    name: ClassVar[str]
    #: Command-line shorthands for fields, e.g. ``{"--text-column": "text_column"}`` (``zoo finetune`` takes them).
    cli_options: ClassVar[Mapping[str, str]] = {}
    # Fields that say how to run, not what is trained: not recorded, and a resume may change them.
    run_options: ClassVar[tuple[str, ...]] = ("keep_checkpoints",)
    seed: int = bounded(0, "[0, 4294967296)")
    # Training checkpoints kept in OUT/checkpoints (newest first); 1 is all an exact resume needs.
    keep_checkpoints: int = bounded(1, "[1, inf)")

    def __post_init__(self):
        check_ranges(self)

    @abstractmethod
    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        """Train, evaluate, and write a loadable model into ``out_dir``."""

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters: every field but the run options (what the card records, what a resume compares)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.run_options}

    def provenance(self, data_fingerprint: str) -> dict[str, Any]:
        """What the card records so the model can be reproduced."""
        from zoo.envinfo import fingerprint

        env = fingerprint()
        return {
            "recipe": {"name": self.name, "params": self.to_dict()},
            "data_fingerprint": data_fingerprint,
            "seed": self.seed,
            "code_version": {"domain_zoo": env.get("domain_zoo"), "git_commit": env.get("git_commit"), "torch": env.get("torch")},
        }

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None):
        """Defaults, then a YAML file, then ``overrides`` (strings are parsed to each field's type)."""
        values = {**read_config(config_file), **(overrides or {})}
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise InputError(f"recipe {cls.name!r} has no field(s) {unknown}; its fields are {sorted(fields)}")
        return cls(**{key: coerce(value, hints[key], key) for key, value in values.items()})


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
    if origin in (tuple, list):
        try:
            items = yaml.safe_load(value) if isinstance(value, str) else value
        except yaml.YAMLError:
            return _FAIL
        if not isinstance(items, (list, tuple)):
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
    return recipe_cls.from_overrides({**recorded, **read_config(config_file), **overrides})


def finetune_recipe_class(card: Any, recipe_name: str | None = None) -> tuple[type[Recipe], dict[str, Any]]:
    """The recipe class :func:`finetune_recipe` uses, and the recorded hyper-parameters it starts from."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    recorded = (card.provenance.get("recipe") or {}) if recipe_name is None else {}
    name = recorded.get("name") or recipe_name or registry.task(card.task).recipe
    if name is None:
        raise InputError(f"{card.id} records no recipe and its task {card.task!r} names none: choose one with "
                         f"--recipe ({', '.join(sorted(registry.recipes))})")
    return resolve_ref(registry.recipe(name).recipe), dict(recorded.get("params", {}))


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


def reproduce(model_id: str, out_dir: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """Retrain a model from its card's recipe; a row per card metric: card and reproduced values,
    their difference, the accepted range and whether the reproduced value lies in it."""
    from zoo.hub import info
    from zoo.registry import get_registry, resolve_ref

    card = info(model_id)
    recorded = card.provenance.get("recipe")
    if not recorded:
        raise InputError(f"the card of {model_id} records no recipe, so it cannot be reproduced")
    recipe_cls = resolve_ref(get_registry().recipe(recorded["name"]).recipe)
    recipe = recipe_cls.from_overrides(recorded["params"])
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
    return rows


def _accepted_range(metric: Mapping[str, Any]) -> tuple[float, float]:
    """Where a reproduced value matches the card: inside the card's 95% CI when it has one, else within
    0.01 or 1% of the value, whichever is larger (kernels differ a little between CPUs)."""
    ci = metric.get("ci95")
    if ci and ci[0] != ci[1]:
        return float(ci[0]), float(ci[1])
    slack = max(0.01, 0.01 * abs(metric["value"]))
    return metric["value"] - slack, metric["value"] + slack
