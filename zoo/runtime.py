"""Run an exported bundle with numpy and ONNX Runtime only — no torch.

A bundle (written by ``zoo export ID --format onnx --out DIR``) is one flat folder
that holds exactly these files, and nothing else::

    model.onnx       the network, dynamic batch size
    bundle.json      how to feed it: inputs, the preprocessing (one of the zoo's own
                     batchers, named in :data:`BATCHERS`, + its spec, as data) and
                     the postprocessing
    card.json        the model card (labels, metrics, provenance)
    parity.json      eager PyTorch vs ONNX Runtime on example inputs, at export time
    ...              files the preprocessing names (a tokenizer): plain file names
    manifest.json    the sha256 and size of every file above
    manifest.sha256  the sha256 of manifest.json (``sha256sum -c`` reads it): the
                     bundle's digest, which ``zoo export`` prints

    >>> from zoo.runtime import load_bundle
    >>> model = load_bundle("exported/", sha256="<the digest zoo export printed>")  # doctest: +SKIP
    >>> model.predict(["a photo.jpg"])              # doctest: +SKIP

What :func:`load_bundle` verifies, every time, before it imports or runs anything
the bundle names (a failure raises a :class:`~zoo.errors.ZooError`, most often
:class:`~zoo.errors.WeightsIntegrityError` naming the file, the expected and the
actual value):

* manifest.json hashes to the digest in manifest.sha256 and, when given, to the
  pinned ``sha256``;
* the folder holds exactly the files manifest.json lists (+ the two above): no
  file missing, none unlisted, each a regular file (no symlink, no folder) under
  a plain name (no ``/``, no ``..``), of the listed size and sha256;
* bundle.json has the expected format, version, keys and types; its preprocessing
  names a batcher of :data:`BATCHERS` (no other module is imported), whose spec
  the batcher checks, and any file that preprocessing reads is one of the
  verified files (:class:`BundleFiles`); card.json's labels are strings;
* model.onnx loads in ONNX Runtime; at ``predict``, a classifier's output has one
  row of logits per input and one per label.

Without ``sha256`` this catches any partial edit (a changed file, a deleted or
edited hash, an added or removed file); someone able to rewrite every file,
manifest and digest included, can still replace the whole bundle. Pinning the
digest printed at export (``load_bundle(DIR, sha256=...)``) makes the bundle
tamper-evident against that too. The check happens at load: the folder must not
change while it loads.

Preprocessing classes live in the domain packages (``vision.transforms:ImageBatcher``,
``nlp.transforms:TextBatcher``, ``robotics.observations:ObservationBatcher`` for a
navigation policy's ``Dict`` observations) and import no torch; a bundle of array
inputs (control policies, volumes) needs none: :class:`ArrayBatcher` is built in.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from importlib import import_module
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.errors import BackendError, InputError, UnsafeFormatError, WeightsIntegrityError
from zoo.hashing import sha256_file
from zoo.registry import current_ref

BUNDLE_FORMAT = "zoo-onnx-bundle"
BUNDLE_VERSION = 2
MANIFEST_FORMAT = "zoo-bundle-manifest"
MANIFEST_VERSION = 1
BUNDLE_FILE, MANIFEST_FILE, DIGEST_FILE, MODEL_FILE, CARD_FILE = (
    "bundle.json", "manifest.json", "manifest.sha256", "model.onnx", "card.json")
# The only preprocessing classes a bundle may name (``module:Class``): the zoo's own batchers. Image and text
# bundles import them from the vision and nlp packages, which a deployment installs (docs/architecture.md).
BATCHERS = ("zoo.runtime:ArrayBatcher", "vision.transforms:ImageBatcher", "vision.transforms:PictureBatcher",
            "vision.transforms:DetectorBatcher", "nlp.transforms:TextBatcher", "nlp.transforms:TranslationBatcher",
            "robotics.observations:ObservationBatcher")
# "segmentation": one picture a run (pictures differ in size), logits scaled back to the picture, best class per pixel.
# "detection": one picture a run, raw head outputs decoded by zoo.boxes.detect (thresholds, NMS, boxes scaled back).
# "translation": model.onnx encodes, the bundle's decoder graph (one step, past keys and values) runs greedy_decode.
# "recurrent": a policy's step: model.onnx takes observations ("input") and states ("state", [N, *state_shape]) and
# gives actions ("output") and the next states ("next_state").
POSTPROCESSING = ("classification", "raw", "segmentation", "detection", "translation", "recurrent")
MAX_MANIFEST_BYTES = 1 << 20  # read before it is verified: bounded
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REEXPORT = "re-export it with `zoo export ID --out DIR`"
_NO_STATE = object()  # Bundle.predict without a state argument


class ArrayBatcher:
    """Arrays of the model's input shape → one float32 batch ``{"input": [N, *shape]}``."""

    def __init__(self, shape: Sequence[int], dtype: str = "float32"):
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        if any(d < 1 for d in self.shape) or self.dtype.kind != "f":
            raise InputError(f"expected a positive shape and a float dtype, got {self.shape} {self.dtype}")

    @classmethod
    def from_bundle(cls, files: "BundleFiles", spec: dict[str, Any]) -> "ArrayBatcher":
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


def resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[C, h, w]`` → ``[C, height, width]``, bilinear as torch's ``interpolate(..., align_corners=False)``: each
    output pixel from its two nearest source rows, then columns (a gather and a blend: no dense weight matrix)."""
    maps = maps.astype(np.float32, copy=False)
    top, bottom, down = _bilinear_taps(maps.shape[1], height)
    rows = maps[:, top, :] * (1 - down)[None, :, None] + maps[:, bottom, :] * down[None, :, None]
    left, right, across = _bilinear_taps(maps.shape[2], width)
    return rows[:, :, left] * (1 - across) + rows[:, :, right] * across


def _bilinear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel of a 1-D linear resize at pixel centres: its lower and upper source pixel and the
    upper one's weight (negative sources clamped to the first pixel)."""
    source = np.maximum((np.arange(size_out, dtype=np.float32) + 0.5) * np.float32(size_in / size_out) - 0.5, 0)
    low = np.minimum(source.astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (source - low).astype(np.float32)


class BundleFiles:
    """The verified files of a bundle: the only files a batcher's ``from_bundle`` may read."""

    def __init__(self, directory: Path, names: set[str]):
        self.directory, self.names = directory, frozenset(names)

    def path(self, name: Any) -> Path:
        """The path of ``name``, a file manifest.json lists (and that was verified)."""
        if not isinstance(name, str) or name not in self.names:
            raise InputError(f"the preprocessing names the file {name!r}: expected one of the bundle's files "
                             f"{sorted(self.names)} (a plain file name listed in {MANIFEST_FILE})")
        return self.directory / name


class Bundle:
    """An exported model: ``predict(raw_inputs)`` like ``zoo.Model.predict``, ``run(arrays)`` for raw outputs."""

    def __init__(self, directory: str | Path, providers: Sequence[str] | None = None, *, sha256: str | None = None):
        self.directory = Path(directory)
        files = verify_bundle(self.directory, sha256)
        self.spec = _checked_spec(_read_json(self.directory / BUNDLE_FILE), self.directory / BUNDLE_FILE)
        self.card = _read_json(self.directory / CARD_FILE)
        labels = self.card.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise InputError(f"{self.directory / CARD_FILE}: expected 'labels' to be a list of strings, got {labels!r:.80}")
        self.preprocess = _batcher(files, self.spec["preprocessing"])
        self.session = _session(self.directory / MODEL_FILE, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        post = self.spec["postprocessing"]
        self.decoder = _session(files.path(post.get("decoder")), providers) if post["kind"] == "translation" else None

    @property
    def labels(self) -> list[str] | None:
        return self.card.get("labels")

    @property
    def state_shape(self) -> tuple[int, ...] | None:
        """The shape of one episode's recurrent state (a recurrent policy's bundle), else None."""
        post = self.spec["postprocessing"]
        return tuple(post["state_shape"]) if post["kind"] == "recurrent" else None

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The network's output for a dict of named input arrays; a recurrent policy's, ``(actions, next_states)``."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise InputError(f"expected inputs {self.input_names}, got {sorted(inputs)} (missing {missing})")
        try:
            outputs = self.session.run(None, {n: inputs[n] for n in self.input_names})
        except _onnxruntime_errors() as e:
            raise BackendError(f"{self.directory / MODEL_FILE}: ONNX Runtime could not run the model on inputs "
                               f"{ {n: (inputs[n].dtype.name, inputs[n].shape) for n in self.input_names} }: {e}") from None
        expected = 1 if self.state_shape is None else 2
        if len(outputs) != expected:
            raise BackendError(f"{self.directory / MODEL_FILE}: expected a network with {expected} output(s), got "
                               f"{len(outputs)}; {_REEXPORT}")
        return outputs[0] if expected == 1 else tuple(outputs)

    def predict(self, raw_inputs: Any, state: Any = _NO_STATE) -> Any:
        """One raw input or a list of them (a list in gives a list out), as the torch model's ``predict``.

        A recurrent policy's bundle also takes the state its previous step returned (None at an episode's start;
        ``state_shape`` for one observation, ``[N, *state_shape]`` for a list of N) and then returns
        ``(action(s), next_state)``; without a state, each observation starts an episode."""
        single = not isinstance(raw_inputs, (list, tuple))
        items = [raw_inputs] if single else list(raw_inputs)
        if state is not _NO_STATE or self.state_shape is not None:
            return self._step(items, single, state)
        if not items:
            return []
        post = self.spec["postprocessing"]
        if post["kind"] == "translation":
            translations = self.translate(items)
            return translations[0] if single else translations
        if post["kind"] in ("segmentation", "detection"):
            per_picture = self._segment if post["kind"] == "segmentation" else self._detect
            predictions = [per_picture(item) for item in items]
            return predictions[0] if single else predictions
        outputs = self.run(self.preprocess(items))
        if post["kind"] == "classification":
            predictions = softmax_top_k(self._logits(outputs, len(items)), self.labels, post.get("top_k", 5))
        else:
            predictions = list(outputs)
        return predictions[0] if single else predictions

    def translate(self, sentences: Sequence[str], max_new_tokens: int | None = None, batch_size: int = 32) -> list[str]:
        """Translations in input order, as the ``translation`` task's greedy ``predict``: empty lines stay empty,
        sentences decoded longest first in batches."""
        rows = self.token_ids(sentences, max_new_tokens=max_new_tokens, batch_size=batch_size)
        return [self.preprocess.decode([row])[0] if row else "" for row in rows]

    def token_ids(self, sentences: Sequence[str], *, max_new_tokens: int | None = None,
                  batch_size: int = 32) -> list[list[int]]:
        """The greedy output ids of each sentence (up to and with eos; ``[]`` for an empty one)."""
        post = self.spec["postprocessing"]
        if self.decoder is None:
            raise InputError(f"{self.directory}: a {post['kind']!r} bundle does not translate")
        limit = post.get("max_new_tokens", 128) if max_new_tokens is None else max_new_tokens
        positions = post.get("max_positions", limit + 1)
        if type(limit) is not int or not 1 <= limit < positions:
            raise InputError(f"max_new_tokens must be a whole number from 1 to {positions - 1} (the decoder has "
                             f"{positions} positions), got {limit!r:.40}")
        encoded = self.preprocess.encode(list(sentences))
        todo = sorted((i for i, s in enumerate(sentences) if s.strip()), key=lambda i: -len(encoded[i]))
        result: list[list[int]] = [[] for _ in sentences]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            generated = greedy_decode(self.session, self.decoder, self.preprocess([encoded[i] for i in chunk]),
                                      max_new_tokens=limit, start_id=post["decoder_start_token_id"],
                                      eos_id=post["eos_token_id"])
            for i, row in zip(chunk, generated):
                result[i] = row
        return result

    def _segment(self, item: Any) -> dict[str, Any]:
        """``{"mask", "labels"}`` for one picture, as the ``semantic-segmentation`` task's ``predict``."""
        batch = self.preprocess([item])
        if "sizes" not in batch:
            raise InputError(f"{self.directory / BUNDLE_FILE}: 'segmentation' postprocessing needs pictures prepared "
                             f"by vision.transforms:PictureBatcher, got {self.spec['preprocessing']['ref']}; {_REEXPORT}")
        logits = self.run(batch)
        labels = self.labels or []
        if logits.ndim != 4 or logits.shape[:2] != (1, len(labels)) or logits.dtype.kind != "f":
            raise BackendError(f"{self.directory / MODEL_FILE}: expected logits [1, {len(labels)}, h, w] for one "
                               f"picture, got {logits.dtype.name} {logits.shape}")
        height, width = (int(n) for n in batch["sizes"][0])
        mask = resize_bilinear(logits[0], height, width).argmax(axis=0).astype(np.int64)
        return {"mask": mask, "labels": dict(enumerate(labels))}

    def _detect(self, item: Any) -> dict[str, Any]:
        """``{"boxes", "scores", "labels"}`` for one picture, as the ``object-detection`` task's ``predict``."""
        from zoo.boxes import DECODERS, detect, extra_columns

        post = self.spec["postprocessing"]
        batch = self.preprocess([item])
        if "resized" not in batch or post.get("decoder") not in DECODERS:
            raise InputError(f"{self.directory / BUNDLE_FILE}: 'detection' postprocessing needs pictures prepared by "
                             f"vision.transforms:DetectorBatcher and a decoder among {DECODERS}, got "
                             f"{self.spec['preprocessing']['ref']} and {post.get('decoder')!r:.40}; {_REEXPORT}")
        rows = self.run(batch)
        labels = self.labels or []
        if rows.ndim != 3 or rows.shape[0] != 1 or rows.shape[2] != len(labels) + extra_columns(post["decoder"]) \
                or rows.dtype.kind != "f":
            raise BackendError(f"{self.directory / MODEL_FILE}: expected [1, anchors, {len(labels)} classes + "
                               f"{extra_columns(post['decoder'])}] floats for one picture, got {rows.dtype.name} "
                               f"{rows.shape}")
        try:
            boxes, scores, indices = detect(rows[0], post, tuple(batch["resized"][0]), tuple(batch["sizes"][0]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{self.directory / BUNDLE_FILE}: the 'detection' postprocessing spec is not valid: "
                             f"{type(e).__name__}: {e}; {_REEXPORT}") from None
        return {"boxes": boxes.tolist(), "scores": scores.tolist(), "labels": [labels[i] for i in indices]}

    def _step(self, items: list[Any], single: bool, state: Any) -> Any:
        """A recurrent policy's step; ``state`` _NO_STATE: from fresh states, the actions alone."""
        if self.state_shape is None:
            raise InputError(f"{self.directory}: this bundle is not a recurrent policy: it takes no state; "
                             "call predict(inputs)")
        if not items:
            raise InputError("expected at least one observation")
        expected = self.state_shape if single else (len(items), *self.state_shape)
        if state is _NO_STATE or state is None:
            states = np.zeros((len(items), *self.state_shape), np.float32)
        else:
            states = np.asarray(state)
            if states.dtype.kind not in "fiu" or states.shape != expected or not np.isfinite(states).all():
                raise InputError(f"expected a finite recurrent state of shape {expected} for {len(items)} "
                                 f"observation(s), got {states.dtype.name} {states.shape}: pass the state the previous "
                                 "predict returned for the same observations, or None at an episode's start")
            states = states.astype(np.float32).reshape(len(items), *self.state_shape)
        actions, next_states = self.run({**self.preprocess(items), "state": states})
        if actions.shape[:1] != (len(items),) or next_states.shape != (len(items), *self.state_shape):
            raise BackendError(f"{self.directory / MODEL_FILE}: expected {len(items)} actions and states "
                               f"{(len(items), *self.state_shape)}, got {actions.shape} and {next_states.shape}")
        actions = list(actions)
        if state is _NO_STATE:
            return actions[0] if single else actions
        return (actions[0], next_states[0]) if single else (actions, next_states)

    def _logits(self, outputs: np.ndarray, rows: int) -> np.ndarray:
        classes = len(self.labels) if self.labels else None
        if (outputs.ndim != 2 or outputs.shape[0] != rows or outputs.shape[1] < 1 or outputs.dtype.kind != "f"
                or classes not in (None, outputs.shape[1])):
            raise BackendError(f"{self.directory / MODEL_FILE}: expected {rows} rows of "
                               f"{classes or 'class'} float logits, got {outputs.dtype.name} {outputs.shape}")
        return outputs


def greedy_decode(encoder, decoder, inputs: dict[str, np.ndarray], *, max_new_tokens: int, start_id: int,
                  eos_id: int) -> list[list[int]]:
    """Greedy decoding with an encoder graph (source → cross-attention keys and values) and a one-step decoder
    graph with past keys and values (:mod:`nlp.translation_export`), as transformers' ``generate`` with a forced
    eos at the last step: each row's ids up to and with its eos."""
    cross_keys, cross_values = encoder.run(None, inputs)
    layers, batch, heads, _, head_dim = cross_keys.shape
    past_keys = past_values = np.zeros((layers, batch, heads, 0, head_dim), dtype=np.float32)
    tokens = np.full((batch, 1), start_id, dtype=np.int64)
    rows: list[list[int]] = [[] for _ in range(batch)]
    finished = np.zeros(batch, dtype=bool)
    for step in range(max_new_tokens):
        logits, past_keys, past_values = decoder.run(None, {
            "input_ids": tokens, "step": np.array([step], dtype=np.int64), "attention_mask": inputs["attention_mask"],
            "self_keys": past_keys, "self_values": past_values, "cross_keys": cross_keys, "cross_values": cross_values})
        chosen = logits.argmax(axis=-1) if step < max_new_tokens - 1 else np.full(batch, eos_id)
        for i in np.flatnonzero(~finished):
            rows[i].append(int(chosen[i]))
        finished |= chosen == eos_id
        if finished.all():
            break
        tokens = chosen[:, None].astype(np.int64)
    return rows


def load_bundle(directory: str | Path, providers: Sequence[str] | None = None, *, sha256: str | None = None) -> Bundle:
    """Open an exported bundle, verified as the module docstring says; ``sha256`` pins its digest."""
    return Bundle(directory, providers, sha256=sha256)


def seal(directory: str | Path) -> str:
    """Write manifest.json (sha256 + size of every other file) and manifest.sha256; returns the digest."""
    directory = Path(directory)
    paths = [p for p in sorted(directory.iterdir()) if p.name not in (MANIFEST_FILE, DIGEST_FILE)]
    for path in paths:
        _check_plain_name(path.name, directory)
        if not path.is_file():
            raise InputError(f"a bundle holds files only, got the folder {path}")
    listed = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in paths}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": listed}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    digest = sha256_file(directory / MANIFEST_FILE)
    (directory / DIGEST_FILE).write_text(f"{digest}  {MANIFEST_FILE}\n", encoding="utf-8")
    return digest


def verify_bundle(directory: str | Path, sha256: str | None = None) -> BundleFiles:
    """Check the manifest against its digest (and ``sha256``), then every file against the manifest."""
    directory = Path(directory)
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise InputError(f"expected sha256 to be 64 lowercase hex digits (the digest zoo export printed), got {sha256!r}")
    recorded = recorded_digest(directory)
    manifest_path = directory / MANIFEST_FILE
    data = _regular_file_bytes(manifest_path, MAX_MANIFEST_BYTES)
    actual = hashlib.sha256(data).hexdigest()
    for expected in (recorded, sha256):
        if expected is not None and actual != expected:
            raise WeightsIntegrityError(str(manifest_path), expected, actual)
    listed = _manifest_files(data, manifest_path)
    present = {entry.name for entry in os.scandir(directory)} - {MANIFEST_FILE, DIGEST_FILE}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise WeightsIntegrityError(str(directory / unlisted[0]), f"no such file ({MANIFEST_FILE} does not list it)",
                                    "a file that is not part of the bundle")
    for name, meta in listed.items():
        _verify_file(directory / name, meta)
    for name in (BUNDLE_FILE, MODEL_FILE, CARD_FILE):
        if name not in listed:
            raise InputError(f"{manifest_path}: expected a bundle with {name}, the manifest lists none; {_REEXPORT}")
    return BundleFiles(directory, set(listed))


def recorded_digest(directory: str | Path) -> str:
    """The bundle's digest as its manifest.sha256 records it (what ``load_bundle(..., sha256=)`` pins)."""
    path = Path(directory) / DIGEST_FILE
    text = _regular_file_bytes(path, 1024).decode("ascii", errors="replace")
    match = re.fullmatch(rf"([0-9a-f]{{64}})  {re.escape(MANIFEST_FILE)}\n", text)
    if not match:
        raise WeightsIntegrityError(str(path), f"'<64 hex digits>  {MANIFEST_FILE}'", repr(text[:100]))
    return match.group(1)


def _manifest_files(data: bytes, path: Path) -> dict[str, dict[str, Any]]:
    """The ``files`` of a manifest, each a plain name with a sha256 and a size, or an error naming what is wrong."""
    manifest = _parse_json(data, path)
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path}: expected a {MANIFEST_FORMAT} version {MANIFEST_VERSION}, got format "
                         f"{manifest.get('format')!r:.40} version {manifest.get('version')!r:.40}; {_REEXPORT}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise InputError(f"{path}: expected 'files' to map file names to their sha256 and size, got {files!r:.80}")
    for name, meta in files.items():
        _check_plain_name(name, path)
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) \
                or not _SHA256.fullmatch(meta["sha256"]):
            raise WeightsIntegrityError(str(path.parent / name), f"a sha256 (64 hex digits) in {MANIFEST_FILE}",
                                        f"{meta!r:.80}")
        if type(meta.get("size")) is not int or meta["size"] < 0:
            raise WeightsIntegrityError(str(path.parent / name), f"a size in bytes in {MANIFEST_FILE}", f"{meta!r:.80}")
    return files


def _check_plain_name(name: str, where: Path) -> None:
    """A file directly in the bundle folder: no folder part, no ``..``, nothing absolute or unprintable."""
    if name in ("", ".", "..", MANIFEST_FILE, DIGEST_FILE) or not name.isprintable() \
            or any(sep in name for sep in ("/", "\\", "\0")):
        raise InputError(f"{where} lists {name!r}: expected a plain file name in the bundle folder "
                         "(no '/', no '..', not the manifest itself)")


def _verify_file(path: Path, meta: dict[str, Any]) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise WeightsIntegrityError(str(path), meta["sha256"], "no file") from None
    if not stat.S_ISREG(info.st_mode):
        raise WeightsIntegrityError(str(path), meta["sha256"], "not a regular file (a symlink or a folder)")
    if info.st_size != meta["size"]:
        raise WeightsIntegrityError(str(path), f"{meta['size']} bytes, sha256 {meta['sha256']}", f"{info.st_size} bytes")
    actual = sha256_file(path)
    if actual != meta["sha256"]:
        raise WeightsIntegrityError(str(path), meta["sha256"], actual)


def _regular_file_bytes(path: Path, limit: int) -> bytes:
    """The bytes of a regular file (no symlink) of at most ``limit`` bytes."""
    try:
        info = path.lstat()
    except OSError as e:  # no such file, or the bundle "folder" is a file
        raise InputError(f"expected an exported bundle with {path.name} in {path.parent}, found none "
                         f"({e.strerror}); bundles written before {DIGEST_FILE} existed need a new export: "
                         f"{_REEXPORT}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        raise WeightsIntegrityError(str(path), f"a regular file of at most {limit} bytes",
                                    f"{'a file' if stat.S_ISREG(info.st_mode) else 'a symlink or folder'} of "
                                    f"{info.st_size} bytes")
    return path.read_bytes()



def _parse_json(data: bytes, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"{path}: expected a JSON object, could not parse it: {e}; {_REEXPORT}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(value).__name__}; {_REEXPORT}")
    return value


def _read_json(path: Path) -> dict[str, Any]:
    return _parse_json(path.read_bytes(), path)


def _checked_spec(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    """bundle.json with the format, version, keys and types the runtime relies on."""
    if spec.get("format") != BUNDLE_FORMAT or spec.get("version") != BUNDLE_VERSION \
            or type(spec.get("version")) is not int:
        raise InputError(f"{path}: expected a {BUNDLE_FORMAT} version {BUNDLE_VERSION} bundle.json, got format "
                         f"{spec.get('format')!r:.40} version {spec.get('version')!r:.40}; {_REEXPORT}")
    pre, post = spec.get("preprocessing"), spec.get("postprocessing")
    if not (isinstance(pre, dict) and isinstance(pre.get("ref"), str) and isinstance(pre.get("spec"), dict)):
        raise InputError(f"{path}: expected 'preprocessing' to be {{'ref': 'module:Class', 'spec': {{...}}}}, "
                         f"got {pre!r:.80}")
    pre["ref"] = current_ref(pre["ref"])  # a bundle written before its batcher moved
    if pre["ref"] not in BATCHERS:
        raise UnsafeFormatError(f"{path}: preprocessing ref {pre['ref']!r:.80} is not one of the zoo's batchers "
                                f"{BATCHERS}; a bundle may not import other code")
    top_k = post.get("top_k", 5) if isinstance(post, dict) else None
    if not (isinstance(post, dict) and post.get("kind") in POSTPROCESSING and type(top_k) is int and top_k >= 1):
        raise InputError(f"{path}: expected 'postprocessing' to be {{'kind': one of {POSTPROCESSING}, "
                         f"'top_k': a positive int}}, got {post!r:.80}")
    if post["kind"] == "translation":
        ids = ("decoder_start_token_id", "eos_token_id", "max_new_tokens")
        if not isinstance(post.get("decoder"), str) or not all(type(post.get(k)) is int and post[k] >= 0 for k in ids):
            raise InputError(f"{path}: expected 'translation' postprocessing to name its 'decoder' graph and give "
                             f"whole numbers {ids}, got {post!r:.120}")
    if post["kind"] == "recurrent":
        shape = post.get("state_shape")
        if not (isinstance(shape, list) and shape and all(type(d) is int and 0 < d <= 4096 for d in shape)):
            raise InputError(f"{path}: expected 'recurrent' postprocessing to give the 'state_shape' of one episode "
                             f"(positive whole numbers), got {post!r:.120}")
    inputs = spec.get("inputs")
    if not (isinstance(inputs, list) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in inputs)):
        raise InputError(f"{path}: expected 'inputs' to be a list of {{'name', 'dtype', 'shape'}}, got {inputs!r:.80}")
    return spec


def _batcher(files: BundleFiles, preprocessing: dict[str, Any]):
    """The allow-listed batcher named by ``preprocessing["ref"]``, built from its spec."""
    module, _, name = preprocessing["ref"].partition(":")
    batcher = getattr(import_module(module), name)
    try:
        return batcher.from_bundle(files, preprocessing["spec"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # InputError too: a field missing, mistyped, wrong
        reason = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        raise InputError(f"{files.directory / BUNDLE_FILE}: preprocessing spec for {preprocessing['ref']} is not "
                         f"valid: {reason}; {_REEXPORT}") from None


def _session(path: Path, providers: Sequence[str] | None):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=list(providers or ["CPUExecutionProvider"]))
    except _onnxruntime_errors() as e:
        raise BackendError(f"{path}: ONNX Runtime could not load it as a model: {e}; {_REEXPORT}") from None


def _onnxruntime_errors() -> tuple[type[BaseException], ...]:
    """What ONNX Runtime raises: its own exception classes, and ValueError/RuntimeError from its Python layer."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    return own + (ValueError, RuntimeError, TypeError)
