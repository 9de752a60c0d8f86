"""Run an exported bundle with numpy and ONNX Runtime only — no torch.

A bundle (written by ``zoo export ID --format onnx --out DIR``) holds::

    model.onnx     the network, dynamic batch size
    bundle.json    how to feed it: inputs, the preprocessing (a class named by
                   reference + its spec, as data) and the postprocessing
    card.json      the model card (labels, metrics, provenance, sha256 of every file)
    parity.json    eager PyTorch vs ONNX Runtime on example inputs, at export time
    ...            files the preprocessing needs (a tokenizer)

    >>> from zoo.runtime import load_bundle
    >>> model = load_bundle("exported/")            # doctest: +SKIP
    >>> model.predict(["a photo.jpg"])              # doctest: +SKIP

Preprocessing classes live in the domain packages (``vision.transforms:ImageBatcher``,
``nlp.tokenizer:TextBatcher``) and import no torch; a bundle of array inputs
(control policies, volumes) needs none: :class:`ArrayBatcher` is built in.
"""
from __future__ import annotations

import hashlib
import json
from importlib import import_module
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.errors import InputError, WeightsIntegrityError

BUNDLE_FORMAT = "zoo-onnx-bundle"
BUNDLE_VERSION = 1


class ArrayBatcher:
    """Arrays of the model's input shape → one float32 batch ``{"input": [N, *shape]}``."""

    def __init__(self, shape: Sequence[int], dtype: str = "float32"):
        self.shape, self.dtype = tuple(int(d) for d in shape), dtype

    @classmethod
    def from_bundle(cls, directory, spec: dict[str, Any]) -> "ArrayBatcher":
        return cls(spec["shape"], spec.get("dtype", "float32"))

    def __call__(self, raw_inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        arrays = [np.asarray(x, dtype=self.dtype) for x in raw_inputs]
        for i, array in enumerate(arrays):
            if array.shape != self.shape:
                raise InputError(f"input {i}: expected an array of shape {self.shape}, got {array.shape}")
            if not np.isfinite(array).all():
                raise InputError(f"input {i}: expected finite values, got NaN or inf")
        return {"input": np.stack(arrays)}


def softmax_top_k(logits: np.ndarray, labels: list[str] | None, k: int = 5) -> list[dict[str, Any]]:
    """``{"label", "index", "score", "top_k"}`` per row, as a zoo classifier's ``predict`` returns."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=-1, keepdims=True)
    names = labels or [str(i) for i in range(probs.shape[-1])]
    k = min(k, probs.shape[-1])
    rows = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        rows.append({"label": names[int(order[0])], "index": int(order[0]), "score": float(row[order[0]]),
                     "top_k": [(names[int(i)], float(row[i])) for i in order]})
    return rows


class Bundle:
    """An exported model: ``predict(raw_inputs)`` like ``zoo.Model.predict``, ``run(arrays)`` for raw outputs."""

    def __init__(self, directory: str | Path, providers: Sequence[str] | None = None):
        import onnxruntime

        self.directory = Path(directory)
        self.spec = _read_json(self.directory / "bundle.json")
        if self.spec.get("format") != BUNDLE_FORMAT or self.spec.get("version") != BUNDLE_VERSION:
            raise InputError(f"{self.directory}: expected a {BUNDLE_FORMAT} version {BUNDLE_VERSION} bundle.json, "
                             f"got format {self.spec.get('format')!r} version {self.spec.get('version')!r}")
        self.card = _read_json(self.directory / "card.json")
        _verify_files(self.directory, self.spec["files"])
        pre = self.spec["preprocessing"]
        module, _, name = pre["ref"].partition(":")
        self.preprocess = getattr(import_module(module), name).from_bundle(self.directory, pre["spec"])
        self.session = onnxruntime.InferenceSession(str(self.directory / "model.onnx"),
                                                    providers=list(providers or ["CPUExecutionProvider"]))
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def labels(self) -> list[str] | None:
        return self.card.get("labels")

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The network's output for a dict of named input arrays."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise InputError(f"expected inputs {self.input_names}, got {sorted(inputs)} (missing {missing})")
        (output,) = self.session.run(None, {n: inputs[n] for n in self.input_names})
        return output

    def predict(self, raw_inputs: Any) -> Any:
        """One raw input or a list of them (a list in gives a list out), as the torch model's ``predict``."""
        single = not isinstance(raw_inputs, (list, tuple))
        items = [raw_inputs] if single else list(raw_inputs)
        if not items:
            return []
        outputs = self.run(self.preprocess(items))
        post = self.spec["postprocessing"]
        predictions = softmax_top_k(outputs, self.labels, int(post.get("top_k", 5))) \
            if post["kind"] == "classification" else list(outputs)
        return predictions[0] if single else predictions


def load_bundle(directory: str | Path, providers: Sequence[str] | None = None) -> Bundle:
    """Open an exported bundle; its files are checked against the sha256 recorded in ``bundle.json``."""
    return Bundle(directory, providers)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"expected an exported bundle with {path.name} in {path.parent}, found none") from None


def _verify_files(directory: Path, files: dict[str, str]) -> None:
    for name, expected in files.items():
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if digest != expected:
            raise WeightsIntegrityError(str(directory / name), expected, digest)
