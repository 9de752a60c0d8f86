"""Task adapters: how an NLP model's raw inputs (strings) and outputs look to a user.

Inputs, for both tasks: a string, or a text pair as a ``(text, text_pair)`` tuple
inside a list or a ``{"text": ..., "text_pair": ...}`` dict. ``model.predict``
takes one input or a list; texts are tokenized outside the network, sorted by
length and run in batches of ``batch_size`` (default 32) padded to their longest
member, then returned in the input order.

* Longer than the card's ``max_length`` tokens: truncated; the count is logged as a
  warning (logger ``"nlp"``) and kept in ``model.adapter.last_truncated``.
* Empty or whitespace-only strings are text like any other: they encode to the
  special tokens alone and get an embedding or a class, as sentence-transformers and
  transformers pipelines give them.
* Non-strings (``None``, NaN, numbers, bytes) and strings UTF-8 cannot encode (lone
  surrogates): an :class:`~zoo.errors.InputError` naming the position.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from nlp.transforms import Encoded, TextTokenizer, report_truncated
from zoo.card import ModelCard
from zoo.errors import InputError
from zoo.model import TaskAdapter
from zoo.quantize import quality_record
from zoo.metrics import top_k_predictions

DEFAULT_BATCH_SIZE = 32
TEXT_SUFFIXES = {".txt", ".text", ".md"}


class TextTask(TaskAdapter):
    """Shared by the text tasks: the tokenizer, batching, chunked prediction, saved files."""

    batch_size = DEFAULT_BATCH_SIZE
    int8 = "dynamic"  # a transformer encoder's time goes to its matrix products
    #: How many texts of the labelled set the int8 quality is measured on (the first ones of the split).
    int8_quality_samples = 512

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        pre = card.preprocessing
        self.tokenizer_files = list(pre.get("tokenizer_files") or [pre.get("tokenizer", "tokenizer.json")])
        self.tokenizer = TextTokenizer.from_preprocessing(self.path(pre.get("tokenizer", "tokenizer.json")), pre)
        config = card.arch_args.get("config")
        positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
        if isinstance(positions, int) and self.tokenizer.max_length > positions:  # longer inputs crash the network
            raise InputError(f"the card of {card.id!r} truncates texts at max_length {self.tokenizer.max_length} "
                             f"tokens, but its network has {positions} positions; set max_length <= {positions}")
        self.last_truncated = 0

    @property
    def transform(self) -> Callable[[Any], dict[str, torch.Tensor]]:
        """One text (or pair) → its unpadded network inputs (1-D tensors)."""
        def transform(text):
            batch = self.tokenizer.pad(self.encode([text]))
            return {name: tensor[0] for name, tensor in batch.items()}

        return transform

    def read(self, path) -> str:
        """A text file's contents (UTF-8), one input per file."""
        from nlp.datasets import decode

        path = Path(path)
        if path.suffix.lower() not in TEXT_SUFFIXES:
            raise InputError(f"expected a text file ({', '.join(sorted(TEXT_SUFFIXES))}) for task {self.card.task!r}, got {path.name}")
        try:
            return decode(path.read_bytes(), path)
        except FileNotFoundError:
            raise InputError(f"expected a text file at {path}, found none") from None

    def encode(self, raw_inputs: Sequence[Any], what: str = "texts") -> list[Encoded]:
        """Tokenize (checking every input); logs how many were truncated."""
        encoded = self.tokenizer.encode(raw_inputs)
        self.last_truncated = sum(e.truncated for e in encoded)
        report_truncated(self.last_truncated, len(encoded), self.tokenizer.max_length, what)
        return encoded

    def batch(self, raw_inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        return self.tokenizer.pad(self.encode(raw_inputs))

    def runtime_preprocessing(self) -> dict[str, Any]:
        return {"ref": "nlp.transforms:TextBatcher", "spec": dict(self.card.preprocessing)}

    def example_inputs(self) -> list[dict[str, torch.Tensor]]:
        """Two padded token batches of different sizes and lengths (parity checks, export)."""
        return [dict(self.batch(["A short sentence.", "The zoo loads a model in one line and fine-tunes it."])),
                dict(self.batch(["Hi", "Benchmarks need a control arm", "so a number means something to a reader."]))]

    def collate(self, batch: Sequence[tuple[Encoded, int]]):
        """Training/eval batches of ``(Encoded, label)``: dynamic padding → ``(inputs, targets)``."""
        encoded, labels = zip(*batch)
        return self.tokenizer.pad(encoded), torch.as_tensor(labels, dtype=torch.long)

    def run(self, module, encoded: Sequence[Encoded], batch_size: int | None = None, *,
            device: torch.device) -> torch.Tensor:
        """Network outputs for already-encoded inputs (sent to ``device``, where the module runs), longest
        first in chunks, back in input order."""
        batch_size = int(batch_size or self.batch_size)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        result = None
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            inputs = self.tokenizer.pad([encoded[i] for i in chunk])
            out = module(**{k: v.to(device) for k, v in inputs.items()}).float().cpu()
            if result is None:
                result = torch.empty((len(encoded), *out.shape[1:]), dtype=out.dtype)
            result[torch.as_tensor(chunk)] = out
        return result

    def predict(self, module, raw_inputs: Sequence[Any], *, device: torch.device, batch_size: int | None = None):
        return self.postprocess(self.run(module, self.encode(raw_inputs), batch_size, device=device))

    def files(self) -> dict[str, Path]:
        """The tokenizer files, so a saved model rebuilds its tokenizer from its own directory."""
        return {name: self.paths[name] for name in self.tokenizer_files if name in self.paths}


class SentenceEmbedding(TextTask):
    """Texts in; L2-normalised embeddings out: a ``float32`` array ``[n, dim]`` (``[dim]`` for one text)."""

    #: The int8 bundle's mean cosine similarity to eager embeddings may be at most this below the fp32 bundle's.
    int8_tolerance = 0.01
    #: The real texts the int8 quality is measured on: the test tweets (an encoder has no labelled set of its own).
    int8_quality_data = "nlp/tweets-sentiment"

    def int8_quality(self, model, fp32_bundle, int8_bundle) -> dict[str, Any]:
        """Mean cosine similarity of the fp32 and the int8 bundle's embeddings to eager PyTorch's on real texts."""
        from nlp.datasets import load_splits

        texts = load_splits(self.int8_quality_data).test.texts[: self.int8_quality_samples]
        eager = np.asarray(model.predict(texts), dtype=np.float64)
        fp32, int8 = (_row_cosines(eager, np.asarray(b.predict(texts))) for b in (fp32_bundle, int8_bundle))
        return quality_record("mean cosine similarity to eager fp32 embeddings", self.int8_quality_data, "test",
                        len(texts), float(fp32.mean()), float(int8.mean()), self.int8_tolerance,
                        int8_min=float(int8.min()), int8_p01=float(np.quantile(int8, 0.01)))

    def postprocess(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().cpu().numpy()


class TextClassification(TextTask):
    """Texts in; ``{"label", "index", "score", "top_k"}`` per text out, scores from softmax."""

    top_k = 5
    #: The int8 bundle's macro-F1 may be at most this (1 point) below the fp32 bundle's.
    int8_tolerance = 0.01

    def int8_quality(self, model, fp32_bundle, int8_bundle) -> dict[str, Any]:
        """Macro-F1 of the fp32 and the int8 bundle on the test split (else validation) of the dataset the
        card's metrics were measured on."""
        import torch

        from nlp.datasets import load_splits
        from zoo.metrics import macro_f1

        data = next((m["dataset"] for m in self.card.metrics if m.get("dataset")), None)
        if data is None:
            raise InputError(f"the card of {self.card.id!r} names no dataset in its metrics: the int8 quality is "
                             "measured on the labelled set the model was evaluated on")
        splits = load_splits(data, labels=self.card.labels)
        split = "test" if splits.test is not None else "val"
        dataset = splits.split(split)
        texts = dataset.texts[: self.int8_quality_samples]
        targets = torch.as_tensor(dataset.labels[: len(texts)])
        scores = [macro_f1(torch.as_tensor([p["index"] for p in bundle.predict(texts)]), targets,
                           len(self.card.labels or [])) for bundle in (fp32_bundle, int8_bundle)]
        return quality_record("macro_f1", str(data), split, len(texts), *scores, self.int8_tolerance)

    def runtime_postprocessing(self) -> dict[str, Any]:
        return {"kind": "classification", "top_k": self.top_k}

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        return top_k_predictions(outputs, self.card.labels, self.top_k)

    def label_indices(self, labels: Sequence[str], source: str = "the data") -> np.ndarray:
        """Indices of ``labels`` in the model's classes; unknown labels are an InputError naming them."""
        from nlp.datasets import label_indices
        from zoo.data import label_name

        return label_indices([label_name(label) for label in labels], self.card.labels or [], source)


def _row_cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    other = other.astype(np.float64)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    return (reference * other).sum(axis=1) / np.maximum(norms, 1e-12)

