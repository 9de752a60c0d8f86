"""The model card: everything known about a model, stored as ``card.json``."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.atomic import write_text_atomic
from zoo.errors import InputError

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
SCHEMA_VERSION = 1
MAX_CARD_BYTES = 8 << 20  # real cards are a few KiB; a bigger one is not a card
MAX_FILE_NAME_BYTES = 255  # one path component on every common file system
_NONE = type(None)
# The JSON type of each field (a card is read from untrusted folders: check before use).
_FIELD_TYPES = {
    "id": str, "domain": str, "task": str, "architecture": str, "arch_args": dict, "labels": (list, _NONE),
    "input": dict, "preprocessing": dict, "metrics": list, "params": (int, _NONE), "license": (str, _NONE),
    "source": (str, _NONE), "description": str, "files": dict, "provenance": dict, "schema_version": int,
}


@dataclass
class ModelCard:
    """Metadata that travels with weights.

    ``input`` describes what the network takes (shape, dtype, value range) and
    ``preprocessing`` how raw inputs become that; ``metrics`` is a list of
    ``{"name", "value", "dataset", "split"}`` (plus ``ci95`` where known);
    ``files`` maps a file name to ``{"sha256", "size", "source"}``;
    ``provenance`` holds the resolved recipe, data fingerprint, seed and code version.
    """

    id: str
    domain: str
    task: str
    architecture: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None
    input: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    params: int | None = None
    license: str | None = None
    source: str | None = None
    description: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        """A card from its JSON form; :class:`InputError` on missing, unknown or mistyped fields."""
        if not isinstance(data, dict):
            raise InputError(f"expected a model card as a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("id", "domain", "task", "architecture") if name not in data]
        if missing:
            raise InputError(f"model card lacks required fields {missing}; it has {sorted(data)}")
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"model card has unknown fields {unknown}; expected a subset of {sorted(known)}")
        _check_field_types(data)
        return cls(**data)

    def metric(self, name: str, split: str | None = None) -> dict[str, Any] | None:
        """The first recorded metric called ``name`` (on ``split`` when given)."""
        return next((m for m in self.metrics if m.get("name") == name and split in (None, m.get("split"))), None)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``card.json`` into ``directory`` atomically."""
        path = Path(directory) / CARD_FILE
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelCard":
        """Read a card from ``card.json`` or a directory holding one."""
        path = Path(path)
        if path.is_dir():
            path = path / CARD_FILE
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_CARD_BYTES + 1)
        except FileNotFoundError:
            raise InputError(f"expected a model card at {path}, found no file") from None
        except OSError as exc:
            raise InputError(f"could not read model card {path}: {exc}") from None
        if len(raw) > MAX_CARD_BYTES:
            raise InputError(f"model card {path} is over {MAX_CARD_BYTES >> 20} MiB; a card is a small JSON file")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InputError(f"model card {path} is not valid UTF-8 JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None


def check_file_name(name: Any) -> str:
    """``name`` if it is a plain file name (one component: no folders, no ``..``, not absolute), else InputError.

    Every file a card names lives directly in its model folder; this keeps reads and writes inside it.
    """
    if (not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0")
            or len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES):
        raise InputError(f"expected a plain file name inside the model folder (no folders, no '..', "
                         f"at most {MAX_FILE_NAME_BYTES} bytes), got {name!r}")
    return name


def _check_field_types(data: dict[str, Any]) -> None:
    for name, value in data.items():
        expected = _FIELD_TYPES[name]
        if not isinstance(value, expected) or isinstance(value, bool) and expected in (int, (int, _NONE)):
            allowed = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise InputError(f"model card field {name!r} must be {allowed.replace('NoneType', 'null')}, "
                             f"got {type(value).__name__} {value!r:.80}")
    if not all(isinstance(label, str) for label in data.get("labels") or []):
        raise InputError(f"model card labels must be strings, got {data['labels']!r:.80}")
    if not all(_is_metric(metric) for metric in data.get("metrics", [])):
        raise InputError("model card metrics must be objects with name, dataset and split (strings), value "
                         f"(a number) and optionally ci95 ([low, high]); got {data['metrics']!r:.80}")
    if not all(isinstance(meta, dict) for meta in data.get("files", {}).values()):
        raise InputError(f"model card files must map names to objects, got {data['files']!r:.80}")
    recipe = data.get("provenance", {}).get("recipe")
    if recipe is not None and not (isinstance(recipe, dict) and isinstance(recipe.get("name"), str)
                                   and isinstance(recipe.get("params"), dict)):
        raise InputError(f"model card provenance.recipe must be an object with a name (string) and params "
                         f"(an object), got {recipe!r:.80}")


def _is_metric(metric: Any) -> bool:
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    return (isinstance(metric, dict) and all(isinstance(metric.get(k), str) for k in ("name", "dataset", "split"))
            and number(metric.get("value"))
            and (metric.get("ci95") is None or isinstance(metric["ci95"], list) and len(metric["ci95"]) == 2
                 and all(number(x) for x in metric["ci95"])))
