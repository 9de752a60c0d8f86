"""The weights cache: a content-addressed store of verified safetensors files.

Layout under :func:`zoo_home`::

    blobs/sha256/<hash>        every file, named by its sha256 (the only place files load from)
    verified/<hash>.json       size, mtime_ns, ctime_ns and inode when the blob was last fully hashed
    converted/<hash>[.<remap>].json   legacy pickle <hash> (+ key remap) -> the safetensors blob converted from it
    index.json                 {hash: [{"name", "source", "model_id"}, ...]} for listings
    tmp/<hash>.<pid>.<rand>.part   downloads and copies in progress
    locks/<hash>.lock          one fetcher per hash across processes
    quarantine/                files whose hash did not match, moved out of the way

Every write is a temp file plus ``os.replace``, so a killed process never leaves
a half-written file where it would be loaded.

What is verified when: a blob enters the store only after its sha256 matched the
pinned one. :func:`fetch` (so every ``zoo.load``) rehashes a stored blob unless its
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
(``verified/``, ``converted/``, ``index.json``) are only caches of facts the
blobs prove: a malformed one counts as absent (rehash, reconvert, re-index).
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
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import filelock
import platformdirs

from zoo import download
from zoo.errors import (
    DownloadError,
    InputError,
    OfflineError,
    UnsafeFormatError,
    WeightsIntegrityError,
    ZooError,
)
from zoo.hashing import sha256_file
from zoo.registry import WeightFile

_STORE_PARTS = ("blobs", "verified", "converted", "tmp", "locks", "quarantine")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Filesystem timestamps tick coarsely (jiffies, or 2 s on FAT): a write in the
# same tick as the blob's creation would keep its mtime. Like git's "racy" rule,
# trust a stat record only when the blob was already this old when it was hashed.
_RACY_NS = 2_000_000_000


# -- locations and settings -------------------------------------------------
def zoo_home() -> Path:
    """``$ZOO_HOME``, else the user cache dir for ``domain-zoo`` (read on every call)."""
    home = os.environ.get("ZOO_HOME")
    return Path(home).expanduser() if home else _user_cache_dir()


@functools.lru_cache(maxsize=1)
def _user_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("domain-zoo"))


def is_offline() -> bool:
    """Whether ``ZOO_OFFLINE`` is 1/true/yes: then the cache opens no connection."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached from here (its host name does not resolve), or None.

    Looked up once a process, before the first online call: on a machine without a
    network, huggingface_hub would retry for half a minute and then report the
    file as missing from its cache.
    """
    if is_offline() or _hf_env_offline():
        return None  # no lookup at all: the cache is all there is, and offline opens no socket
    from huggingface_hub import constants

    return _resolve_failure(urllib.parse.urlsplit(constants.ENDPOINT).hostname or "huggingface.co")


@functools.lru_cache(maxsize=None)
def _resolve_failure(host: str) -> str | None:
    import socket

    try:
        socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError as e:  # socket.gaierror: no DNS, no network
        return f"{host} cannot be resolved ({e.strerror or e})"
    return None


def hub_offline() -> bool:
    """Whether Hugging Face files can come from the local cache only (ZOO_OFFLINE, HF_HUB_OFFLINE, no network)."""
    return is_offline() or _hf_env_offline() or hub_unreachable() is not None


def offline_reason() -> str:
    """Why a file could not be fetched: ZOO_OFFLINE, HF_HUB_OFFLINE, an unreachable Hub, or a failed request."""
    if is_offline():
        return "ZOO_OFFLINE is set"
    unreachable = hub_unreachable()
    if unreachable:
        return f"the network is unreachable ({unreachable}; set ZOO_OFFLINE=1 to use only what is cached)"
    if _hf_env_offline():
        return "HF_HUB_OFFLINE is set"
    return "the Hugging Face Hub could not be reached"


def _hf_env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def hf_offline():
    """Within it, while ``ZOO_OFFLINE`` is set or the Hub is unreachable, huggingface_hub (and
    transformers and timm through it) opens no connection at all and uses its cache only.

    ``local_files_only=True`` is not enough: huggingface_hub still builds request headers, whose agent
    detection looks its registry up online, and it reads ``HF_HUB_OFFLINE`` only once, at import. Every
    request and that lookup check its ``constants.HF_HUB_OFFLINE``, so that is switched on for the call.
    """
    if not is_offline() and hub_unreachable() is None:
        yield
        return
    from huggingface_hub import constants

    global _hf_offline_depth, _hf_offline_saved
    with _hf_offline_lock:  # concurrent loads: the last one out restores the setting
        if _hf_offline_depth == 0:
            _hf_offline_saved, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
        _hf_offline_depth += 1
    try:
        yield
    finally:
        with _hf_offline_lock:
            _hf_offline_depth -= 1
            if _hf_offline_depth == 0:
                constants.HF_HUB_OFFLINE = _hf_offline_saved


_hf_offline_lock = threading.Lock()
_hf_offline_depth = 0
_hf_offline_saved = False


def _dir(part: str) -> Path:
    path = zoo_home() / part
    path.mkdir(parents=True, exist_ok=True)
    return path


def _blob(digest: str) -> Path:
    return zoo_home() / "blobs" / "sha256" / digest


# -- public API -------------------------------------------------------------
def fetch(wf: WeightFile, *, model_id: str | None = None, progress: bool = False) -> Path:
    """A local path to a verified safetensors file (or ``format="raw"`` data file) for ``wf``, fetching it if needed.

    The file is taken from the store when present (rehashed unless its stat
    matches the last verification), else from ``wf.source``, hash-checked and
    stored. ``format="torch-pickle"`` files are converted once to safetensors
    and the converted blob is returned. Raises WeightsIntegrityError,
    OfflineError, UnsafeFormatError or DownloadError.
    """
    if wf.format == "torch-pickle":
        path = _fetch_converted(wf, model_id, progress)
    else:
        path = _fetch_blob(wf, model_id, progress)
        _require_format(path, wf, wf.source)
    return path


def cached_path(wf: WeightFile) -> Path | None:
    """The store path :func:`fetch` would return, if present (no hashing, no network)."""
    digest = wf.sha256
    if wf.format == "torch-pickle":
        digest = _converted_digest(_converted_record(wf))
        if digest is None:
            return None
    blob = _blob(digest)
    return blob if _not_a_file(blob) is None else None


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
                _mark_verified(blob, digest)
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


# -- fetching one blob --------------------------------------------------------
def _fetch_blob(wf: WeightFile, model_id: str | None, progress: bool) -> Path:
    """The verified store blob for ``wf.sha256``, fetched from its source if missing."""
    blob = _blob(wf.sha256)
    if not _stat_trusted(blob, wf.sha256):
        with _lock(wf.sha256):
            # Another process may have stored it while we waited for the lock.
            if os.path.lexists(blob):
                _check_blob(blob, wf.sha256, wf.name)
            else:
                _store_from_source(wf, model_id, progress)
    _remember(wf.sha256, {"name": wf.name, "source": wf.source, "model_id": model_id})
    return blob


def _check_blob(blob: Path, digest: str, name: str) -> None:
    """Rehash a stored blob unless its stat is trusted; quarantine and raise on mismatch or a non-file."""
    if _stat_trusted(blob, digest):
        return
    actual = _not_a_file(blob) or sha256_file(blob)
    if actual != digest:
        moved_to = _quarantine(blob, digest, actual, name)
        raise WeightsIntegrityError(str(blob), digest, actual, moved_to)
    _mark_verified(blob, digest)


def _store_from_source(wf: WeightFile, model_id: str | None, progress: bool) -> None:
    """Fetch ``wf.source`` into a fresh temp file, check it and move it into the store (lock held)."""
    _remove_stale_parts(wf.sha256)
    tmp = _dir("tmp") / f"{wf.sha256}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        origin, actual = _stage(wf, model_id, tmp, progress)
        _admit(tmp, wf, origin, actual or sha256_file(tmp))
    finally:
        tmp.unlink(missing_ok=True)


def _stage(wf: WeightFile, model_id: str | None, tmp: Path, progress: bool) -> tuple[str, str | None]:
    """Put the source's bytes at ``tmp``; return (where they came from, sha256 if already known)."""
    source = wf.source
    if source.startswith(("https://", "http://")):
        if is_offline():
            raise _offline_error(wf, model_id)
        return source, download.download(source, tmp, expected_size=wf.size, progress=progress)
    if source.startswith("hf://"):
        local = _hf_local(wf, model_id)
    else:
        local = _local_source(source)
    _copy(local, tmp)
    return str(local), None


def _admit(tmp: Path, wf: WeightFile, origin: str, actual: str) -> None:
    """Move ``tmp`` into the store if its hash is the pinned one and its format is allowed."""
    if actual != wf.sha256:
        moved_to = _quarantine(tmp, wf.sha256, actual, wf.name)
        raise WeightsIntegrityError(origin, wf.sha256, actual, moved_to)
    if wf.format in ("safetensors", "raw"):
        _require_format(tmp, wf, origin)  # refused files never enter the store
    blob = _blob(wf.sha256)
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, blob)
    _fsync_dir(blob.parent)
    _mark_verified(blob, wf.sha256)


def _offline_error(wf: WeightFile, model_id: str | None) -> OfflineError:
    command = f"zoo fetch {model_id}" if model_id else "zoo fetch MODEL_ID"
    what = f"{model_id!r} needs {wf.name}" if model_id else f"{wf.name} is needed"
    return OfflineError(
        f"{what}, which is not in the zoo cache ({zoo_home()}) and {offline_reason()}; "
        f"run `{command}` while online (it downloads from {wf.source}), then retry"
    )


# -- sources ------------------------------------------------------------------
def _local_source(source: str) -> Path:
    """The file behind a ``package://``, ``file://`` or plain path source."""
    if source.startswith("package://"):
        path = _package_file(source)
    elif source.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    elif "://" in source:
        raise InputError(f"unknown weights source scheme in {source!r}; expected package://, file://, https://, hf:// or a path")
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise DownloadError(f"weights source {source!r} not found (looked at {path})")
    return path


def _package_file(source: str) -> Path:
    import importlib.resources

    package, _, rel = source[len("package://"):].partition("/")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise DownloadError(f"weights source {source!r}: package {package!r} is not installed") from None
    # Zip-installed packages have no real path; those are not supported (wheels unpack to disk).
    return Path(str(root.joinpath(*rel.split("/"))))


def _hf_local(wf: WeightFile, model_id: str | None) -> Path:
    """``hf://ORG/REPO/PATH[@REV]`` through huggingface_hub (only its local cache when offline)."""
    repo_id, filename, revision = _parse_hf(wf.source)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import LocalEntryNotFoundError, OfflineModeIsEnabled
    except ImportError:
        raise ZooError(f"{wf.source} needs huggingface_hub: pip install 'domain-zoo[torch]'") from None
    try:
        with hf_offline():
            path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=hf_cache_dir(),
                                   local_files_only=hub_offline())
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        # Cache only (offline, or no network) and not in the HF cache either.
        raise _offline_error(wf, model_id) from None
    except Exception as e:  # huggingface_hub raises many types; all mean "could not get it"
        raise DownloadError(f"download of {wf.source} failed: {type(e).__name__}: {e}") from None
    return Path(path).resolve()  # snapshot entries are symlinks into the HF blob store


def _parse_hf(source: str) -> tuple[str, str, str | None]:
    rest, revision = source[len("hf://"):], None
    head, at, tail = rest.rpartition("@")
    if at and "/" not in tail:
        rest, revision = head, tail
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise InputError(f"expected hf://ORG/REPO/PATH/IN/REPO[@REVISION], got {source!r}")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def hf_cache_dir() -> str | None:
    """HF's cache dir from the environment now (huggingface_hub reads it once at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.environ[var]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _copy(src: Path, dst: Path) -> None:
    """Copy and fsync. Never a hardlink: a write to the cached blob would change the source file too."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)


# -- formats and legacy conversion ------------------------------------------
def _sniff(path: Path) -> str:
    """``"safetensors"``, ``"pickle"``, ``"torch-zip"`` or ``"unknown"``, from the first bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 2 <= header_len <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    return "unknown"


def _require_format(path: Path, wf: WeightFile, origin: str) -> None:
    """Safetensors for ``format="safetensors"``; anything but a pickle for ``format="raw"``."""
    if wf.format != "raw":
        _require_safetensors(path, wf, origin)
        return
    kind = _sniff(path)
    if kind in ("pickle", "torch-zip"):
        raise UnsafeFormatError(
            f"refused {wf.name} from {origin}: it is {_KIND_WORDS[kind]}, declared as a raw data file; "
            "the zoo never unpickles files"
        )


def _require_safetensors(path: Path, wf: WeightFile, origin: str) -> None:
    kind = _sniff(path)
    if kind != "safetensors":
        raise UnsafeFormatError(
            f"refused {wf.name} from {origin}: it is {_KIND_WORDS[kind]}, not safetensors. Pickle can execute "
            f"code when loaded, so the zoo never unpickles it; convert it to safetensors, or declare the "
            f"WeightFile with format='torch-pickle' if it is a trusted legacy state dict"
        )


_KIND_WORDS = {
    "pickle": "a Python pickle",
    "torch-zip": "a torch.save zip archive (pickle inside)",
    "unknown": "not a recognised weights format",
    "safetensors": "safetensors",
}


def _converted_record(wf: WeightFile) -> Path:
    """Where the conversion of ``wf`` is recorded: keyed by the source hash and the key remap."""
    if wf.remap is None:
        return zoo_home() / "converted" / f"{wf.sha256}.json"
    remap_key = hashlib.sha256(wf.remap.encode()).hexdigest()[:16]
    return zoo_home() / "converted" / f"{wf.sha256}.{remap_key}.json"


def _fetch_converted(wf: WeightFile, model_id: str | None, progress: bool) -> Path:
    """The safetensors blob converted from a legacy pickle; converts at most once."""
    record_path = _converted_record(wf)
    digest = _converted_digest(record_path)
    if digest is not None:
        with _lock(digest):
            if os.path.lexists(_blob(digest)):
                _check_blob(_blob(digest), digest, wf.name)
                return _blob(digest)
    source_blob = _fetch_blob(wf, model_id, progress)
    with _lock(wf.sha256):
        digest = _converted_digest(record_path)  # converted by another process meanwhile?
        if digest is not None and _not_a_file(_blob(digest)) is None:
            return _blob(digest)
        return _convert(source_blob, wf, record_path, model_id)


def _converted_digest(record_path: Path) -> str | None:
    """The converted blob's hash a conversion record names; None when absent or malformed."""
    digest = (_read_record(record_path) or {}).get("sha256")
    return digest if isinstance(digest, str) and _HASH_RE.match(digest) else None


def _convert(source_blob: Path, wf: WeightFile, record_path: Path, model_id: str | None) -> Path:
    """Read the pickle once with ``weights_only=True``, apply ``wf.remap``, store it as safetensors, record it."""
    kind = _sniff(source_blob)
    if kind == "safetensors" and wf.remap is None:  # already safe: nothing to convert
        return source_blob
    if kind == "unknown":
        raise UnsafeFormatError(f"refused {wf.name} from {wf.source}: neither safetensors nor a torch pickle")
    from backends.state import load_state, save_state

    state = load_state(source_blob) if kind == "safetensors" else _load_legacy_state(source_blob, wf)
    metadata = {"zoo.converted_from": wf.sha256, "zoo.name": wf.name}
    if wf.remap is not None:
        state = _remapped(state, wf)
        metadata["zoo.remap"] = wf.remap
    tmp = _dir("tmp") / f"{wf.sha256}.{os.getpid()}.{secrets.token_hex(4)}.converted.safetensors"
    try:
        save_state(state, tmp, metadata=metadata)
        digest = sha256_file(tmp)
        blob = _blob(digest)
        if _not_a_file(blob) not in (None, "missing"):  # os.replace cannot replace a directory
            _quarantine(blob, digest, "not-a-file", wf.name)
        os.replace(tmp, blob)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(blob.parent)
    _mark_verified(blob, digest)
    _write_json(record_path, {"source_sha256": wf.sha256, "sha256": digest, "size": blob.stat().st_size,
                              "name": wf.name, "remap": wf.remap})
    _remember(digest, {"name": wf.name, "source": wf.source, "model_id": model_id, "converted_from": wf.sha256})
    return blob


def _remapped(state: dict, wf: WeightFile) -> dict:
    """``state`` passed through the spec's ``remap`` function (keys renamed for the architecture)."""
    import torch

    from zoo.registry import resolve_ref

    try:
        out = resolve_ref(wf.remap)(state)
    except (ImportError, AttributeError, KeyError, ValueError) as e:
        raise InputError(f"{wf.name}: key remap {wf.remap!r} failed: {type(e).__name__}: {e}") from None
    if not isinstance(out, dict) or not out or not all(isinstance(v, torch.Tensor) for v in out.values()):
        raise InputError(f"{wf.name}: key remap {wf.remap!r} must return a state dict of tensors, "
                         f"got {type(out).__name__}")
    return out


def _load_legacy_state(path: Path, wf: WeightFile) -> dict:
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses anything but tensors and plain containers.
        raise UnsafeFormatError(f"refused {wf.name}: torch.load(weights_only=True) rejected it: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{wf.name}: expected a state dict of tensors (or one under 'state_dict'/'model'), "
                         f"got {type(obj).__name__}")
    return obj


# -- verification records, quarantine, index ---------------------------------
def _stat_trusted(blob: Path, digest: str) -> bool:
    """Whether the blob is the regular file last fully hashed, unchanged since (so hashing can be skipped).

    ``ctime`` moves on any write, ``os.utime`` or rename and cannot be set back,
    so a blob edited with its mtime restored is rehashed.
    """
    record = _read_record(zoo_home() / "verified" / f"{digest}.json")
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


def _mark_verified(blob: Path, digest: str) -> None:
    st = blob.lstat()
    _write_json(zoo_home() / "verified" / f"{digest}.json",
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
    os.replace(path, dest)
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
            _write_json(zoo_home() / "index.json", index)


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


def _remove_stale_parts(digest: str) -> None:
    """Temp files of this hash left by killed fetchers (we hold its lock, so none is live)."""
    tmp = zoo_home() / "tmp"
    for part in tmp.glob(f"{digest}.*") if tmp.is_dir() else ():
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


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():  # a record garbled into a directory: os.replace cannot replace it
        _discard(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
