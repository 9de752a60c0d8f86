"""Parallel text for translation: your own files and the splits every translation recipe reads.

Custom data, UTF-8:

* ``.tsv`` (or ``.tab``): ``source<TAB>target`` a line, no header; a line with another
  number of tabs is an error naming it;
* Moses-style two files, ``train.en`` + ``train.es``: given as ``"train.en,train.es"``
  (or a tuple); line ``i`` of one translates line ``i`` of the other, so their line
  counts must match (an error names the first line one of them lacks);
* ``.jsonl`` (or ``.ndjson``): ``{"translation": {"en": ..., "es": ...}}`` a line (the
  Hugging Face datasets shape); ``source_lang``/``target_lang`` pick the keys.

Bytes that are not UTF-8 are an :class:`~zoo.errors.InputError` naming the file and
line. Empty lines are kept as pairs of empty strings while reading (a file of
sentences to translate keeps its order); :func:`training_pairs` drops pairs with an
empty side for training and counts them.

Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from zoo.data import fingerprint
from zoo.errors import InputError

log = logging.getLogger("nlp")

TSV_SUFFIXES = (".tsv", ".tab")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class ParallelText:
    """Aligned source and target sentences (``ds[i]`` is ``(source, target)``)."""

    sources: list[str]
    targets: list[str]
    digest: str = ""

    def __post_init__(self):
        if len(self.sources) != len(self.targets):
            raise InputError(f"expected one target per source, got {len(self.sources)} sources and "
                             f"{len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[str, str]:
        return self.sources[index], self.targets[index]

    def subset(self, indices: Sequence[int]) -> "ParallelText":
        return ParallelText([self.sources[i] for i in indices], [self.targets[i] for i in indices], self.digest)


@dataclass
class ParallelSplits:
    """Train/validation/test parallel text of one language pair, with a fingerprint and a report."""

    train: ParallelText
    val: ParallelText | None
    test: ParallelText | None
    source_lang: str
    target_lang: str
    fingerprint: str
    source: str
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> ParallelText:
        from nlp.datasets import named_split

        return named_split(self, name)


# -- reading ------------------------------------------------------------------------
def read_lines(path: str | Path) -> tuple[list[str], str]:
    """A UTF-8 text file's lines (``\\n`` or ``\\r\\n`` ends a line; empty lines kept) and its sha256.

    Bytes that are not UTF-8 are an InputError naming the file and the line.
    """
    from nlp.datasets import read_bytes

    path = Path(path)
    data = read_bytes(path, "text file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":  # the newline that ends the last line starts no new one
        lines.pop()
    out = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}, line {number}: not valid UTF-8 (byte 0x{raw[exc.start:exc.start + 1].hex()} "
                             f"at column {exc.start + 1}); save the file as UTF-8") from None
    return out, hashlib.sha256(data).hexdigest()


def read_parallel(data: str | Path | Sequence[str | Path], *, source_lang: str = "en",
                  target_lang: str = "es") -> ParallelText:
    """One parallel file (TSV, JSONL) or a Moses pair (``"a.en,a.es"`` or a 2-tuple); see the module docstring."""
    if isinstance(data, (list, tuple)) or ("," in str(data) and not Path(str(data)).exists()):
        parts = list(data) if isinstance(data, (list, tuple)) else str(data).split(",")
        if len(parts) != 2:
            raise InputError(f"expected two Moses-style files (source,target), got {len(parts)}: {parts}")
        return read_moses(parts[0], parts[1])
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix in TSV_SUFFIXES:
        return read_tsv(path)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path, source_lang, target_lang)
    raise InputError(f"expected parallel text as a {'/'.join(TSV_SUFFIXES + JSONL_SUFFIXES)} file or two "
                     f"Moses-style files 'SRC,TGT', got {path.name}")


def read_tsv(path: str | Path) -> ParallelText:
    """``source<TAB>target`` a line, no header; an empty line is an empty pair."""
    def pair(line: str, number: int) -> tuple[str, str]:
        cells = line.split("\t")
        if len(cells) != 2:
            raise InputError(f"{path}, line {number}: expected 'source<TAB>target' (2 fields), got {len(cells)} "
                             f"field(s): {line[:60]!r}")
        return cells[0], cells[1]

    return _pairs_by_line(path, pair)


def read_moses(source_path: str | Path, target_path: str | Path) -> ParallelText:
    """Two files, line i of one the translation of line i of the other; their line counts must match."""
    sources, source_digest = read_lines(source_path)
    targets, target_digest = read_lines(target_path)
    if len(sources) != len(targets):
        shorter, longer = (source_path, target_path) if len(sources) < len(targets) else (target_path, source_path)
        first = min(len(sources), len(targets)) + 1
        raise InputError(f"Moses files differ in length: {source_path} has {len(sources)} lines, {target_path} "
                         f"has {len(targets)}; {shorter} has no line {first} to match line {first} of {longer}")
    return ParallelText([s.strip() for s in sources], [t.strip() for t in targets],
                        fingerprint(source_digest, target_digest))


def read_jsonl(path: str | Path, source_lang: str, target_lang: str) -> ParallelText:
    """``{"translation": {SRC: ..., TGT: ...}}`` a line; an empty line is an empty pair."""
    shape = f'{{"translation": {{"{source_lang}": text, "{target_lang}": text}}}}'

    def pair(line: str, number: int) -> tuple[str, str]:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise InputError(f"{path}, line {number}: not valid JSON; expected {shape}") from None
        texts = row.get("translation") if isinstance(row, dict) else None
        if not isinstance(texts, dict) or not all(isinstance(texts.get(k), str) for k in (source_lang, target_lang)):
            found = sorted(texts) if isinstance(texts, dict) else (sorted(row) if isinstance(row, dict) else type(row).__name__)
            raise InputError(f"{path}, line {number}: expected {shape}, found {found}")
        return texts[source_lang], texts[target_lang]

    return _pairs_by_line(path, pair)


def _pairs_by_line(path: str | Path, pair) -> ParallelText:
    """Each line of ``path`` through ``pair(line, number) -> (source, target)``; empty lines are empty pairs."""
    lines, digest = read_lines(path)
    sources, targets = [], []
    for number, line in enumerate(lines, 1):
        source, target = pair(line, number) if line.strip() else ("", "")
        sources.append(source.strip())
        targets.append(target.strip())
    return ParallelText(sources, targets, digest)


def training_pairs(text: ParallelText, what: str) -> tuple[ParallelText, int]:
    """The pairs with text on both sides (empty ones cannot teach anything), and how many were dropped."""
    keep = [i for i, (s, t) in enumerate(zip(text.sources, text.targets)) if s.strip() and t.strip()]
    dropped = len(text) - len(keep)
    if dropped:
        log.warning("%s: dropped %d pair(s) with an empty side", what, dropped)
    if not keep:
        raise InputError(f"{what}: no pair has text on both sides")
    return text.subset(keep), dropped


# -- splits -------------------------------------------------------------------------
def load_parallel_splits(data: Any, *, val_data: Any = None, test_data: Any = None, val_fraction: float = 0.1,
                         source_lang: str = "en", target_lang: str = "es", seed: int = 0) -> ParallelSplits:
    """A registered translation dataset id (fixed splits) or your parallel file(s) (a ``val_fraction`` held
    out at random unless ``val_data`` is given)."""
    import numpy as np

    from zoo.data import check_fractions
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if isinstance(data, str) and data in registry.datasets:
        splits = resolve_ref(registry.dataset(data).loader)()
        if (splits.source_lang, splits.target_lang) != (source_lang, target_lang):
            raise InputError(f"{data} pairs {splits.source_lang}->{splits.target_lang}, not "
                             f"{source_lang}->{target_lang}")
        return splits
    langs = {"source_lang": source_lang, "target_lang": target_lang}
    text, dropped = _pairs(data, "training data", **langs)
    report: dict[str, Any] = {"pairs_read": len(text) + dropped, "dropped_empty": dropped}
    val = test = None
    digests = [text.digest]
    if val_data is not None:
        val, report["val_dropped_empty"] = _pairs(val_data, "validation data", **langs)
        digests.append(val.digest)
        train = text
    else:
        check_fractions({"val": val_fraction})
        order = np.random.default_rng(seed).permutation(len(text))
        cut = int(round(len(text) * val_fraction))
        train, val = text.subset(sorted(order[cut:])), (text.subset(sorted(order[:cut])) if cut else None)
    if test_data is not None:
        test, report["test_dropped_empty"] = _pairs(test_data, "test data", **langs)
        digests.append(test.digest)
    sizes = {f"{name}_size": len(split) for name, split in (("train", train), ("val", val), ("test", test)) if split}
    return ParallelSplits(train, val, test, source_lang, target_lang,
                          fingerprint(*digests, json.dumps([source_lang, target_lang, val_fraction, seed])),
                          str(data), {**report, **sizes})


def _pairs(data, what: str, **langs) -> tuple[ParallelText, int]:
    return training_pairs(read_parallel(data, **langs), f"{data} ({what})")
