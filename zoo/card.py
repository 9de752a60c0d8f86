"""The model card: everything known about a model, stored as ``card.json``."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.errors import InputError

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
SCHEMA_VERSION = 1


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
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("id", "domain", "task", "architecture") if name not in data]
        if missing:
            raise InputError(f"model card lacks required fields {missing}; it has {sorted(data)}")
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"model card has unknown fields {unknown}; expected a subset of {sorted(known)}")
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
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"expected a model card at {path}, found no file") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"model card {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; cards are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
