"""The one file digest the zoo pins everything by (imports nothing heavy: the torch-free runtime uses it)."""
from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def digest_file(path: str | os.PathLike, kind: str) -> str:
    """A file's digest of another kind than sha256, for pins upstream publishes that way: ``md5``, or
    ``gunzip-sha256`` (the sha256 of the bytes inside a gzip file; of the file itself when it is no gzip)."""
    if kind == "md5":
        hasher = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()
    if kind == "gunzip-sha256":
        return _gunzip_sha256(path)
    raise ValueError(f"unknown digest kind {kind!r}")


def _gunzip_sha256(path: str | os.PathLike) -> str:
    import gzip
    import zlib

    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if not gzipped:
        return sha256_file(path)
    hasher = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt archive: no digest matches it
        return f"unreadable gzip ({exc})"
    return hasher.hexdigest()
