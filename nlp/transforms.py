"""Text → token ids, outside the network: a ``tokenizers`` tokenizer bound to a card.

Every NLP model in the zoo carries a ``tokenizer.json`` (the Hugging Face
``tokenizers`` format; fast tokenizers of any architecture serialise to it), pinned
by sha256 in its card and fetched through the zoo cache. The card's
``preprocessing`` says how it is used::

    {"tokenizer": "tokenizer.json",        # the card.files entry to read
     "max_length": 256,                    # longer texts are truncated (and counted)
     "pad_token_id": 0,
     "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
     "strip": true}                        # strip surrounding whitespace first (sentence-transformers does)

Texts are encoded once without padding; :meth:`TextTokenizer.pad` pads a batch to
its longest member (dynamic padding).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.errors import InputError

log = logging.getLogger("nlp")

TextInput = Any  # a str, or a (text, text_pair) pair
# What :meth:`TextTokenizer.pad` makes (other names a tokenizer declares are dropped).
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
MAX_LENGTH_LIMIT = 1 << 20  # far above any model's context; bounds what a card may ask for


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Encoded:
    """One text's token ids and segment ids, unpadded."""

    ids: list[int]
    type_ids: list[int]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.ids)


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with truncation at ``max_length``, no padding, and batch padding."""

    def __init__(
        self,
        tokenizer_file: str | Path,
        *,
        max_length: int,
        pad_token_id: int = 0,
        model_input_names: Sequence[str] = ("input_ids", "token_type_ids", "attention_mask"),
        strip: bool = False,
    ):
        from tokenizers import Tokenizer

        # The settings come from a card or a bundle, which may be a stranger's: check them before use.
        if not _is_int(max_length) or not 2 <= max_length <= MAX_LENGTH_LIMIT:
            raise InputError(f"max_length must be a whole number from 2 (room for the special tokens) to "
                             f"{MAX_LENGTH_LIMIT}, got {max_length!r:.40}")
        if (not isinstance(model_input_names, (list, tuple)) or "input_ids" not in model_input_names
                or not all(isinstance(name, str) for name in model_input_names)):
            raise InputError(f"model_input_names must be a list of names with input_ids (of {INPUT_NAMES}), "
                             f"got {model_input_names!r:.80}")
        self.file = Path(tokenizer_file)
        try:
            self.backend = Tokenizer.from_file(str(self.file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise InputError(f"{self.file} is not a tokenizer.json file the tokenizers library can read: {exc}") from None
        vocab_size = self.backend.get_vocab_size(with_added_tokens=True)
        if not _is_int(pad_token_id) or not 0 <= pad_token_id < vocab_size:
            raise InputError(f"pad_token_id must be a token id of {self.file} (0 to {vocab_size - 1}), "
                             f"got {pad_token_id!r:.40}")
        self.backend.no_padding()  # tokenizer.json may carry fixed padding (all-MiniLM-L6-v2's pads to 128)
        self.backend.enable_truncation(max_length, strategy="longest_first")
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.model_input_names = tuple(model_input_names)
        self.strip = strip

    @classmethod
    def from_preprocessing(cls, tokenizer_file: str | Path, preprocessing: dict) -> "TextTokenizer":
        return cls(
            tokenizer_file,
            max_length=preprocessing.get("max_length", 512),
            pad_token_id=preprocessing.get("pad_token_id", 0),
            model_input_names=preprocessing.get("model_input_names", INPUT_NAMES),
            strip=bool(preprocessing.get("strip", False)),
        )

    # -- encoding -----------------------------------------------------------------
    def encode(self, inputs: Sequence[TextInput]) -> list[Encoded]:
        """Token ids of each text (or ``(text, pair)``), truncated at ``max_length``; checks inputs first."""
        texts = [self._checked(item, i) for i, item in enumerate(inputs)]
        encodings = self.backend.encode_batch(texts, add_special_tokens=True)
        return [Encoded(e.ids, e.type_ids, bool(e.overflowing)) for e in encodings]

    def _checked(self, item: TextInput, position: int):
        if isinstance(item, dict):
            if "text" not in item:
                raise InputError(f"input {position}: expected a dict with 'text' (and optionally 'text_pair'), got keys {sorted(item)}")
            item = item["text"] if item.get("text_pair") is None else (item["text"], item["text_pair"])
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise InputError(f"input {position}: expected a text or a (text, text_pair) pair, got {len(item)} items")
            return tuple(self._text(part, position) for part in item)
        return self._text(item, position)

    def _text(self, text: Any, position: int) -> str:
        """A string as the tokenizer takes it; "" is valid text (it encodes to the special tokens alone,
        as sentence-transformers and transformers pipelines encode it)."""
        if not isinstance(text, str):
            shown = "NaN (a missing value)" if isinstance(text, float) and math.isnan(text) else repr(text)[:60]
            raise InputError(f"input {position}: expected a string, got {type(text).__name__} {shown}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"input {position}: expected text that UTF-8 can encode, got {text[exc.start:exc.end]!r} "
                             f"at character {exc.start} (a lone surrogate); decode the source with errors='replace'") from None
        return text.strip() if self.strip else text

    # -- batching -----------------------------------------------------------------
    def pad(self, batch: Sequence[Encoded]):
        """A dict of ``[len(batch), longest]`` int64 tensors named by ``model_input_names``."""
        import torch

        return {name: torch.from_numpy(array) for name, array in self.pad_arrays(batch).items()}

    def pad_arrays(self, batch: Sequence[Encoded]) -> dict[str, np.ndarray]:
        """:meth:`pad` as int64 numpy arrays (no torch: the exported-model runtime uses it)."""
        longest = max((len(e) for e in batch), default=0)
        ids = np.full((len(batch), longest), self.pad_token_id, dtype=np.int64)
        types = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, e in enumerate(batch):
            n = len(e)
            ids[row, :n] = e.ids
            types[row, :n] = e.type_ids
            mask[row, :n] = 1
        arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        return {name: arrays[name] for name in self.model_input_names if name in arrays}


class TextBatcher:
    """Runtime preprocessing for an exported text model: texts → padded int64 arrays (no torch)."""

    def __init__(self, tokenizer: TextTokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def from_bundle(cls, files, spec: dict) -> "TextBatcher":
        """``files`` is the bundle's :class:`zoo.runtime.BundleFiles`: the tokenizer must be one of its verified files."""
        return cls(TextTokenizer.from_preprocessing(files.path(spec.get("tokenizer", "tokenizer.json")), spec))

    def __call__(self, raw_inputs: Sequence[TextInput]) -> dict[str, np.ndarray]:
        return self.tokenizer.pad_arrays(self.tokenizer.encode(raw_inputs))


class TranslationBatcher:
    """Runtime preprocessing for an exported translator: sentences → padded int64 source arrays, generated ids →
    text (no torch). Sentences over ``max_length`` tokens are cut, ending with eos, as the torch model cuts them."""

    def __init__(self, tokenizer_file: str | Path, *, max_length: int, pad_token_id: int, eos_token_id: int):
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise InputError(f"{tokenizer_file} is not a tokenizer.json file the tokenizers library can read: {exc}") from None
        vocab = self.tokenizer.get_vocab_size(with_added_tokens=True)
        for name, value, low, high in (("max_length", max_length, 2, MAX_LENGTH_LIMIT),
                                       ("pad_token_id", pad_token_id, 0, vocab - 1),
                                       ("eos_token_id", eos_token_id, 0, vocab - 1)):
            if not _is_int(value) or not low <= value <= high:
                raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r:.40}")
        self.max_length, self.pad_token_id, self.eos_token_id = max_length, pad_token_id, eos_token_id

    @classmethod
    def from_bundle(cls, files, spec: dict) -> "TranslationBatcher":
        """``files`` is the bundle's :class:`zoo.runtime.BundleFiles`: the tokenizer must be one of its verified files."""
        return cls(files.path(spec.get("tokenizer", "tokenizer.json")), max_length=spec["max_length"],
                   pad_token_id=spec["pad_token_id"], eos_token_id=spec["eos_token_id"])

    def encode(self, sentences: Sequence[str]) -> list[list[int]]:
        """Each sentence's token ids (ending with eos), cut at ``max_length``; a warning counts the cut ones."""
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise InputError(f"expected text to translate, got {type(sentence).__name__} at position {i}")
        rows = [e.ids for e in self.tokenizer.encode_batch(list(sentences))]
        report_truncated(sum(len(r) > self.max_length for r in rows), len(rows), self.max_length, "sentences")
        return [r if len(r) <= self.max_length else r[: self.max_length - 1] + [self.eos_token_id] for r in rows]

    def __call__(self, rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Token id rows → ``input_ids`` padded with ``pad_token_id`` and the ``attention_mask`` (int64 [B, S])."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
        return {"input_ids": ids, "attention_mask": mask}

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Generated token ids → text, special tokens dropped."""
        return [t.strip() for t in self.tokenizer.decode_batch([list(map(int, r)) for r in rows],
                                                                skip_special_tokens=True)]


def report_truncated(count: int, total: int, max_length: int, what: str = "texts") -> None:
    """Log how many inputs were cut at ``max_length`` (nothing when none were)."""
    if count:
        log.warning("%d of %d %s were longer than %d tokens and were truncated", count, total, what, max_length)
