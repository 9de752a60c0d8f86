"""The one way the zoo writes a file in place: a temp file beside it, then a rename.

A reader sees the old file or the new one, never half of one, and a killed writer
leaves only a dot-named temp file (``.NAME.*.tmp``) behind.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temp path beside ``path``: write it in the block; it replaces ``path`` when the block ends
    without error (a symlink at ``path`` is replaced, never written through) and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the zoo's files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temp file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder ``staging`` to ``target`` (on the same file system), replacing what is there."""
    import shutil

    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
