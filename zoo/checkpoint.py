"""Training checkpoints: atomic directories of safetensors + JSON, never pickle.

A checkpoint is ``OUT/checkpoints/step-00001234/`` holding

- ``model.safetensors``      the model's state_dict;
- ``optimizer.safetensors``  optimizer state tensors, keyed ``state.<param_index>.<name>``;
- ``rng.safetensors``        the torch (and CUDA) generator states;
- ``trainer.json``           everything else (loop position, scheduler, scaler, the
                             optimizer's non-tensor state, Python/NumPy RNG, history,
                             config);
- ``manifest.json``          ``{"format", "files": {name: sha256} for the four files
                             above, "seal"}``, where ``seal`` is the sha256 of the
                             canonical JSON of ``format`` and ``files``.

Any edit is detected before anything is used: a changed file no longer matches its
hash in the manifest, trainer.json included (so "epoch": 4 -> 5 cannot shorten a
resumed run), and a manifest edited to match no longer matches its seal. There is
no secret key: this catches corruption and hand edits, not someone who rewrites
every hash on purpose. After the hashes, trainer.json's fields are checked by type
(:class:`CheckpointError` naming the field, never a TypeError later on).

It is written into a hidden temp directory, fsynced, renamed into place, and only
then named in ``OUT/checkpoints/latest``; older checkpoints are pruned last, so a
crash at any moment leaves the previous complete checkpoint resumable.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from backends.state import load_state, save_state
from zoo.atomic import write_text_atomic
from zoo.errors import CheckpointError
from zoo.hashing import sha256_file

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
TRAINER_FILE = "trainer.json"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 2  # 1: hashes in trainer.json, which itself was not covered
_HASHED_FILES = (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, TRAINER_FILE)
_PREFIX = "step-"
_STEP_DIR = re.compile(r"^step-\d{8,}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX = ".tmp-"
# What the loop position and the split optimizer/RNG state must be; a subclass of int/float, never bool.
_CORE_FIELDS = {"format": int, "step": int, "epoch": int, "batch": int, "optimizer": dict, "rng": dict}
_OPTIMIZER_FIELDS = {"param_groups": list, "scalars": dict}
_RNG_FIELDS = {"python": list, "numpy": list, "cuda_devices": int}


@dataclass
class Checkpoint:
    """A checkpoint read back and verified: tensors on CPU, ``state`` as the trainer saved it."""

    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # a torch optimizer state_dict
    rng: dict[str, Any]  # as backends.seed.rng_state() returns it
    state: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:08d}"


def checkpoints_dir(out_dir: str | os.PathLike) -> Path:
    """``OUT/checkpoints``; CheckpointError if it (or ``OUT``) exists but is not a directory."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    for path in (root.parent, root):
        if os.path.lexists(path) and not path.is_dir():
            raise CheckpointError(
                f"{path} is a file, not a directory; checkpoints go to {root}: move it away or choose another --out"
            )
    return root


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Completed checkpoint directories under ``out_dir``, oldest step first."""
    return _step_dirs(checkpoints_dir(out_dir))


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest`` names, else the newest directory, else None."""
    root = checkpoints_dir(out_dir)
    latest = root / LATEST_FILE
    if latest.is_file():
        name = latest.read_bytes().decode("utf-8", errors="replace").strip()
        path = root / name if _STEP_DIR.match(name) else None  # nothing else is joined to a path
        if path is None or not path.is_dir():
            raise CheckpointError(
                f"{latest} names {name[:80]!r}, which is not a checkpoint directory in {root}; "
                f"{_others_hint(root, exclude=path)}"
            )
        return path
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(
    out_dir: str | os.PathLike,
    step: int,
    *,
    model: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    rng: dict[str, Any],
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write a checkpoint for ``step`` atomically, point ``latest`` at it, prune to ``keep``.

    ``state`` must be JSON-able (it is checked before anything is written).
    """
    root = checkpoints_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer)
    rng_tensors, rng_meta = _split_rng(rng)
    trainer = {"format": FORMAT_VERSION, **state, "optimizer": opt_meta, "rng": rng_meta}
    _to_json(trainer)  # fail on non-JSON state before touching the disk

    _remove_stale_temps(root)
    tmp = root / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        save_state(model, tmp / MODEL_FILE)
        save_state(opt_tensors, tmp / OPTIMIZER_FILE)
        save_state(rng_tensors, tmp / RNG_FILE)
        (tmp / TRAINER_FILE).write_text(_to_json(trainer), encoding="utf-8")
        files = {name: sha256_file(tmp / name) for name in _HASHED_FILES}
        (tmp / MANIFEST_FILE).write_text(_to_json(_sealed(files)), encoding="utf-8")
        for name in (*files, MANIFEST_FILE):
            _fsync(tmp / name)
        _fsync(tmp)
        _move_into_place(tmp, final)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(root / LATEST_FILE, final.name + "\n")
    _prune(out_dir, current=final, keep=keep)
    return final


def load_checkpoint(path: str | os.PathLike, expected_model: dict[str, torch.Tensor] | None = None,
                    fields: dict[str, type | tuple[type, ...]] | None = None) -> Checkpoint:
    """Read and verify a checkpoint directory; CheckpointError says what is wrong and what else exists.

    ``expected_model`` (a model's state_dict) checks that the stored keys and shapes match;
    ``fields`` maps the caller's own ``state`` keys to the types they must have.
    Nothing on disk is changed, whatever happens.
    """
    path = Path(path)
    try:
        checkpoint = _load_verified(path, expected_model)
        _check_fields(checkpoint.state, fields or {}, TRAINER_FILE)
        return checkpoint
    except CheckpointError as exc:
        hint = _others_hint(path.parent, exclude=path)
        raise CheckpointError(f"checkpoint {path} cannot be resumed: {exc}; {hint}") from None


def average_checkpoints(out_dir: str | os.PathLike, last: int,
                        like: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """The mean of the model weights of the newest ``last`` epoch-end checkpoints under ``out_dir`` (checkpoint
    averaging, as fairseq's ``average_checkpoints.py`` and Marian's ``--average``), and those checkpoints.

    ``like`` is the model's state_dict: its keys are averaged (floating ones in float64, then cast back; others
    taken from the newest), each checkpoint verified and checked against it. A mid-epoch checkpoint is no
    epoch's end and is skipped; fewer than ``last`` epoch ends is a CheckpointError naming what is there.
    """
    if last < 1:
        raise CheckpointError(f"average_checkpoints needs last >= 1, got {last}")
    every = list_checkpoints(out_dir)
    ends = [path for path in every if _read_trainer_json(path).get("batch") == 0][-last:]
    if len(ends) < last:
        raise CheckpointError(f"averaging the last {last} epochs needs {last} epoch-end checkpoints in "
                              f"{checkpoints_dir(out_dir)}, found {len(ends)} among {[p.name for p in every]}; "
                              f"train more epochs or keep more checkpoints (train.keep_checkpoints)")
    sums: dict[str, torch.Tensor] = {}
    for path in ends:
        state = load_checkpoint(path, expected_model=like).model
        for key, value in state.items():
            if value.is_floating_point():
                sums[key] = sums.get(key, 0) + value.double()
            else:
                sums[key] = value
    return {key: (value / last).to(like[key].dtype) if like[key].is_floating_point() else value
            for key, value in sums.items()}, ends


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise CheckpointError unless the manifest's seal and every file's sha256 match and trainer.json is well-typed."""
    _read_trainer_json(Path(path))


def check_like(value: Any, template: Any, where: str) -> None:
    """CheckpointError unless ``value`` has ``template``'s structure: the same JSON kinds, dict keys and list lengths.

    For state a torch object takes without checking (a scheduler's or scaler's
    ``load_state_dict`` just assigns), compared with the fresh object's own state.
    """
    kind, expected = _json_kind(value), _json_kind(template)
    if kind != expected:
        raise CheckpointError(f"{where} is {kind} {value!r:.60}, expected {expected}")
    if kind == "dict":
        if sorted(value, key=str) != sorted(template, key=str):
            raise CheckpointError(f"{where} has keys {sorted(value, key=str)}, expected {sorted(template, key=str)}")
        for key in template:
            check_like(value[key], template[key], f"{where}.{key}")
    elif kind == "list":
        if len(value) != len(template):
            raise CheckpointError(f"{where} has {len(value)} entries, expected {len(template)}")
        for i, (item, like) in enumerate(zip(value, template)):
            check_like(item, like, f"{where}[{i}]")


def _json_kind(value: Any) -> str:
    """What JSON makes of ``value``: ints and floats (numpy's too) are numbers, tuples are lists."""
    kinds = (("null", type(None)), ("bool", bool), ("number", numbers.Real), ("str", str), ("dict", dict),
             ("list", (list, tuple)))
    return next((kind for kind, types in kinds if isinstance(value, types)), type(value).__name__)


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (``state.<i>.<name>``) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = []
    for i, group in enumerate(state_dict["param_groups"]):
        plain = {}
        for name, value in group.items():
            if torch.is_tensor(value):  # e.g. a tensor lr for capturable optimizers
                tensors[f"param_groups.{i}.{name}"] = value
            else:
                plain[name] = value
        groups.append(plain)
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    groups = [dict(g) for g in meta["param_groups"]]
    for key, value in tensors.items():
        kind, index, name = key.split(".", 2)
        if kind == "state":
            state.setdefault(int(index), {})[name] = value
        else:
            groups[int(index)][name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": groups}


# --- internals ---------------------------------------------------------------


def _load_verified(path: Path, expected_model: dict[str, torch.Tensor] | None) -> Checkpoint:
    trainer = _read_trainer_json(path)
    tensors = {}
    for name in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE):
        try:
            tensors[name] = load_state(path / name)
        except Exception as exc:  # safetensors raises several types for a bad header
            raise CheckpointError(f"{name} does not load as safetensors ({exc})") from None
    if expected_model is not None:
        _check_model_keys(tensors[MODEL_FILE], expected_model)
    state = {k: v for k, v in trainer.items() if k not in ("optimizer", "rng", "format")}
    try:
        optimizer = unflatten_optimizer_state(tensors[OPTIMIZER_FILE], trainer["optimizer"])
        rng = _join_rng(tensors[RNG_FILE], trainer["rng"])
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{TRAINER_FILE} optimizer/rng entries are malformed ({exc!r})") from None
    return Checkpoint(path=path, model=tensors[MODEL_FILE], optimizer=optimizer, rng=rng, state=state)


def _read_trainer_json(path: Path) -> dict[str, Any]:
    """trainer.json of a checkpoint whose sealed manifest matches every file, its fields type-checked."""
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory")
    files = _read_manifest(path)
    for name, expected in files.items():
        if not (path / name).is_file() or (path / name).is_symlink():
            raise CheckpointError(f"{name} is missing (or not a plain file)")
        actual = sha256_file(path / name)
        if actual != expected:
            size = (path / name).stat().st_size
            raise CheckpointError(
                f"{name} is corrupt, truncated or edited ({size} bytes, sha256 {actual[:12]}…, "
                f"{MANIFEST_FILE} says {expected[:12]}…)"
            )
    trainer = _parse_json(path / TRAINER_FILE)
    _check_fields(trainer, _CORE_FIELDS, TRAINER_FILE)
    if trainer["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{TRAINER_FILE} has format {trainer['format']}, this code reads {FORMAT_VERSION}")
    _check_fields(trainer["optimizer"], _OPTIMIZER_FIELDS, f"{TRAINER_FILE} optimizer")
    _check_fields(trainer["rng"], _RNG_FIELDS, f"{TRAINER_FILE} rng")
    return trainer


def _read_manifest(path: Path) -> dict[str, str]:
    """The ``files`` of a checkpoint's manifest, once its seal and shape check out."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        if (path / TRAINER_FILE).is_file():
            raise CheckpointError(
                f"it has no {MANIFEST_FILE}: written by an older zoo (checkpoint format 1), whose {TRAINER_FILE} "
                "no hash covers, so it cannot be verified; start the run again in a new output directory"
            )
        raise CheckpointError(f"{MANIFEST_FILE} is missing")
    manifest = _parse_json(manifest_path)
    files = manifest.get("files")
    if not (
        isinstance(files, dict)
        and sorted(files) == sorted(_HASHED_FILES)
        and all(isinstance(h, str) and _SHA256.match(h) for h in files.values())
        and manifest.get("format") == FORMAT_VERSION
        and manifest == _sealed(files)
    ):
        raise CheckpointError(
            f"{MANIFEST_FILE} is corrupt or was edited (its seal does not match its contents, or it does not "
            f"list the sha256 of exactly {', '.join(_HASHED_FILES)})"
        )
    return files


def _sealed(files: dict[str, str]) -> dict[str, Any]:
    """The manifest for ``files``: the seal is the sha256 of the canonical JSON of everything else."""
    body = {"format": FORMAT_VERSION, "files": dict(sorted(files.items()))}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**body, "seal": hashlib.sha256(canonical).hexdigest()}


def _parse_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise CheckpointError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} holds a JSON {type(data).__name__}, not an object")
    return data


def _check_fields(data: dict[str, Any], fields: dict[str, type | tuple[type, ...]], where: str) -> None:
    """CheckpointError naming the first field of ``fields`` that is absent or of another type (bool is no int)."""
    absent = [k for k in fields if k not in data]
    if absent:
        raise CheckpointError(f"{where} lacks {absent}")
    for key, types in fields.items():
        value, allowed = data[key], types if isinstance(types, tuple) else (types,)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise CheckpointError(f"{where} field {key!r} must be {names}, got {value!r:.60}")
        if type(value) is int and value < 0:
            raise CheckpointError(f"{where} field {key!r} must not be negative, got {value}")


def _check_model_keys(stored: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{MODEL_FILE} does not match the model: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    shapes = [k for k in expected if tuple(stored[k].shape) != tuple(expected[k].shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(
            f"{MODEL_FILE} shapes differ from the model for {len(shapes)} keys, e.g. {k}: "
            f"stored {tuple(stored[k].shape)}, model {tuple(expected[k].shape)}"
        )


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)), key=lambda p: p.name)


def _others_hint(root: Path, exclude: Path | None) -> str:
    """Name the other checkpoints in ``root`` that still verify, so the user can resume from one."""
    usable = []
    for other in _step_dirs(root):
        if exclude is not None and other.resolve() == exclude.resolve():
            continue
        try:
            verify_checkpoint(other)
            usable.append(str(other))
        except CheckpointError:
            pass
    if not usable:
        return "no other intact checkpoint is left in this directory (nothing was deleted)"
    return (
        f"intact checkpoints still there (nothing was deleted): {', '.join(reversed(usable))}; "
        f"resume from one with `zoo finetune ... --resume PATH` (in Python: fit(resume=PATH))"
    )


def _split_rng(rng: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": rng["torch"]}
    for i, state in enumerate(rng.get("cuda", [])):
        tensors[f"cuda.{i}"] = state
    return tensors, {"python": rng["python"], "numpy": rng["numpy"], "cuda_devices": len(rng.get("cuda", []))}


def _join_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    rng = {"python": meta["python"], "numpy": meta["numpy"], "torch": tensors["torch"]}
    if meta["cuda_devices"]:
        rng["cuda"] = [tensors[f"cuda.{i}"] for i in range(meta["cuda_devices"])]
    return rng


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` (a re-run step) is swapped out first."""
    if not final.exists():
        os.replace(tmp, final)
        return
    aside = final.with_name(f"{_TMP_PREFIX}old-{final.name}-{os.getpid()}")
    os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def _prune(out_dir: str | os.PathLike, current: Path, keep: int) -> None:
    """Delete the oldest checkpoints before ``current`` beyond ``keep`` (newer ones are left alone)."""
    older = [p for p in list_checkpoints(out_dir) if p.name < current.name]
    for path in older[: max(0, len(older) - (max(keep, 1) - 1))]:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temps(root: Path) -> None:
    # Temp dirs are incomplete by construction: left by a process killed mid-write.
    for path in root.iterdir():
        if path.name.startswith(_TMP_PREFIX) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _to_json(data: dict[str, Any]) -> str:
    try:
        return json.dumps(data, indent=1) + "\n"
    except TypeError as exc:
        raise TypeError(f"checkpoint state must be JSON-able (no functions or objects): {exc}") from None



def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
