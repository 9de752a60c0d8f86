"""Training checkpoints: atomic directories of safetensors + JSON, never pickle.

A checkpoint is ``OUT/checkpoints/step-00001234/`` holding

- ``model.safetensors``      the model's state_dict;
- ``optimizer.safetensors``  optimizer state tensors, keyed ``state.<param_index>.<name>``;
- ``rng.safetensors``        the torch (and CUDA) generator states;
- ``trainer.json``           everything else (loop position, scheduler, scaler, the
                             optimizer's non-tensor state, Python/NumPy RNG, history,
                             config) plus the sha256 of each file above.

It is written into a hidden temp directory, fsynced, renamed into place, and only
then named in ``OUT/checkpoints/latest``; older checkpoints are pruned last, so a
crash at any moment leaves the previous complete checkpoint resumable.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from backends.state import load_state, save_state
from zoo.card import write_text_atomic
from zoo.errors import CheckpointError

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
TRAINER_FILE = "trainer.json"
FORMAT_VERSION = 1
_PREFIX = "step-"
_TMP_PREFIX = ".tmp-"


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
    return Path(out_dir) / CHECKPOINTS_DIR


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Completed checkpoint directories under ``out_dir``, oldest step first."""
    return _step_dirs(checkpoints_dir(out_dir))


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest`` names, else the newest directory, else None."""
    root = checkpoints_dir(out_dir)
    latest = root / LATEST_FILE
    if latest.is_file():
        name = latest.read_text(encoding="utf-8").strip()
        path = root / name
        if not (name.startswith(_PREFIX) and path.is_dir()):
            raise CheckpointError(
                f"{latest} names {name!r}, which is not a checkpoint directory in {root}; "
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
    keep: int = 2,
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
        files = {name: _sha256(tmp / name) for name in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)}
        text = _to_json({**trainer, "files": files})
        (tmp / TRAINER_FILE).write_text(text, encoding="utf-8")
        for name in (*files, TRAINER_FILE):
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


def load_checkpoint(path: str | os.PathLike, expected_model: dict[str, torch.Tensor] | None = None) -> Checkpoint:
    """Read and verify a checkpoint directory; CheckpointError says what is wrong and what else exists.

    ``expected_model`` (a model's state_dict) checks that the stored keys and shapes match.
    Nothing on disk is changed, whatever happens.
    """
    path = Path(path)
    try:
        return _load_verified(path, expected_model)
    except CheckpointError as exc:
        hint = _others_hint(path.parent, exclude=path)
        raise CheckpointError(f"checkpoint {path} cannot be resumed: {exc}; {hint}") from None


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise CheckpointError unless every file is present, parses and matches its sha256."""
    _read_trainer_json(Path(path))


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
    state = {k: v for k, v in trainer.items() if k not in ("optimizer", "rng", "files", "format")}
    try:
        optimizer = unflatten_optimizer_state(tensors[OPTIMIZER_FILE], trainer["optimizer"])
        rng = _join_rng(tensors[RNG_FILE], trainer["rng"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{TRAINER_FILE} optimizer/rng entries are malformed ({exc!r})") from None
    return Checkpoint(path=path, model=tensors[MODEL_FILE], optimizer=optimizer, rng=rng, state=state)


def _read_trainer_json(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory")
    missing = [n for n in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, TRAINER_FILE) if not (path / n).is_file()]
    if missing:
        raise CheckpointError(f"missing files {missing}")
    try:
        trainer = json.loads((path / TRAINER_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{TRAINER_FILE} is not valid JSON ({exc})") from None
    needed = ("format", "step", "epoch", "batch", "files", "optimizer", "rng")
    absent = [k for k in needed if k not in trainer] if isinstance(trainer, dict) else list(needed)
    if absent:
        raise CheckpointError(f"{TRAINER_FILE} lacks {absent}")
    if trainer["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{TRAINER_FILE} has format {trainer['format']}, this code reads {FORMAT_VERSION}")
    if sorted(trainer["files"]) != sorted((MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)):
        raise CheckpointError(f"{TRAINER_FILE} lists hashes for {sorted(trainer['files'])}, not for every file")
    for name, expected in trainer["files"].items():
        actual = _sha256(path / name)
        if actual != expected:
            size = (path / name).stat().st_size
            raise CheckpointError(
                f"{name} is corrupt or truncated ({size} bytes, sha256 {actual[:12]}…, expected {expected[:12]}…)"
            )
    return trainer


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
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)), key=lambda p: p.name)


def _others_hint(root: Path, exclude: Path) -> str:
    """Name the other checkpoints in ``root`` that still verify, so the user can resume from one."""
    usable = []
    for other in _step_dirs(root):
        if other.resolve() == Path(exclude).resolve():
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
        f"resume from one with fit(resume=PATH)"
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
