"""Recipes: a dataclass of hyper-parameters plus the code that trains one task.

Overrides come from Python kwargs, a YAML file or ``--set key=value``; the
resolved recipe is written into the trained model's card, so ``zoo reproduce``
can run it again.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from zoo.errors import InputError


@dataclass
class RecipeResult:
    """What a recipe run produced: a loadable model directory and its metrics."""

    out_dir: Path
    metrics: list[dict[str, Any]]


@dataclass
class Recipe(ABC):
    """Base of every task recipe; subclasses add hyper-parameter fields and ``run``."""

    name: ClassVar[str]
    seed: int = 0

    @abstractmethod
    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        """Train, evaluate, and write a loadable model into ``out_dir``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
        values: dict[str, Any] = {}
        if config_file is not None:
            loaded = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise InputError(f"expected a mapping of recipe fields in {config_file}, got {type(loaded).__name__}")
            values.update(loaded)
        values.update(overrides or {})
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise InputError(f"recipe {cls.name!r} has no field(s) {unknown}; its fields are {sorted(fields)}")
        return cls(**{key: coerce(value, hints[key], key) for key, value in values.items()})


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
        items = yaml.safe_load(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return _FAIL
        return origin(items)
    return value if isinstance(value, option) else _FAIL


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def reproduce(model_id: str, out_dir: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """Retrain a model from its card's recipe; rows of (metric, split, card value, reproduced value)."""
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
            rows.append({
                "metric": metric["name"],
                "split": metric["split"],
                "card": metric["value"],
                "reproduced": new["value"],
                "diff": new["value"] - metric["value"],
            })
    return rows
