"""Data helpers every domain shares: CSV/TSV rows, class labels, deterministic stratified splits and
data fingerprints."""
from __future__ import annotations

import csv
import hashlib
import io
import math
import numbers
from typing import Any

import numpy as np

from zoo.errors import InputError


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Indices per split, each class divided in the same proportions; deterministic in ``seed``.

    ``fractions`` names the held-out splits (e.g. ``{"val": .15, "test": .2}``); the rest is ``train``.
    Each fraction must be in [0, 1) and their sum below 1 (an InputError otherwise).
    """
    check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], **{name: [] for name in fractions}}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for name, fraction in fractions.items():
            count = int(round(len(members) * fraction))
            parts[name].append(members[start : start + count])
            start += count
        parts["train"].append(members[start:])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def check_fractions(fractions: dict[str, float]) -> None:
    """InputError unless every held-out fraction is in [0, 1) and together they leave some data to train on."""
    for name, fraction in fractions.items():
        if not 0 <= fraction < 1:  # also False for NaN
            raise InputError(f"{name}_fraction must be in [0, 1), got {fraction!r}")
    if sum(fractions.values()) >= 1:
        shown = " + ".join(f"{name}_fraction={f:g}" for name, f in fractions.items())
        raise InputError(f"held-out fractions must leave data to train on: {shown} is at least 1; lower them")


def fingerprint(*parts: bytes | np.ndarray | str) -> str:
    """sha256 over the given data, labels and split indices (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        elif isinstance(part, str):
            part = part.encode()
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def read_delimited(text: str, source: Any, delimiter: str = ",") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (cells stripped) and ``(line, cells)`` data rows of a CSV/TSV text; blank lines skipped.

    Fields may be quoted, and a quoted field may span lines (``line`` is the line its row starts
    on). A quote that never closes, text after a closing quote, and a row whose number of fields
    differs from the header's (a missing or extra delimiter, or rows merged by a stray quote) are
    InputErrors naming the lines. No header (an empty file) gives ``([], [])``.
    """
    kind = "TSV" if delimiter == "\t" else "CSV"
    csv.field_size_limit(1 << 30)  # long texts are fine; memory is bounded by the file already read
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows, start = [], 1
    try:
        for cells in reader:
            if len(cells) > 1 or (cells and cells[0].strip()):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{source}, line {start}: malformed {kind} ({exc}): a quote opened in the row starting "
                         "there does not close where it should; close it, or double quotes inside quoted fields "
                         '("")') from None
    if not rows:
        return [], []
    (_, header), data = rows[0], rows[1:]
    ragged = [(line, len(cells)) for line, cells in data if len(cells) != len(header)]
    if ragged:
        shown = ", ".join(f"line {line} has {count}" for line, count in ragged[:5])
        more = f" (and {len(ragged) - 5} more rows)" if len(ragged) > 5 else ""
        raise InputError(
            f"{source}: expected {len(header)} fields in every row, as in the header, but {shown}{more}; "
            f"quote fields that hold the delimiter or a line break, and close every quote"
        )
    return [cell.strip() for cell in header], data


def label_name(value: Any) -> str | None:
    """A class label as the text labels are compared by; ``None`` for a missing one.

    Strings are stripped; a number that is a whole number is written as an integer, so
    ``1``, ``1.0`` and ``"1"`` are one class (``1.5`` stays ``"1.5"``); booleans are
    ``"True"``/``"False"``; ``None``, NaN and blank strings are missing.
    """
    if value is None or isinstance(value, str):
        return (value or "").strip() or None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise InputError(f"expected a label as text or a number, got {type(value).__name__} {str(value)[:60]!r}")
