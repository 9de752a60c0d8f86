"""Streamed https downloads into a temp file, hashed on the way in.

Only :mod:`zoo.sources` calls this, for :mod:`zoo.cache`: the store owns the temp file's name, the lock and
the checks that decide whether the bytes enter the store.
"""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from zoo.errors import DownloadError, InputError

CHUNK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "domain-zoo (+https://pypi.org/project/domain-zoo)"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (plain http is allowed only there)."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Accept https anywhere and http only to loopback (test servers); refuse the rest."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return
    raise InputError(f"weights URLs must be https (plain http only to localhost), got {url!r}")


def download(url: str, dest: Path, *, expected_size: int | None = None, progress: bool = False) -> str:
    """Stream ``url`` into ``dest`` (created fresh), fsync it and return its sha256.

    Raises :class:`DownloadError` on HTTP errors, broken connections and short
    reads (fewer bytes than Content-Length, or than ``expected_size`` when the
    server sends no length). ``dest`` is left for the caller to delete.
    """
    check_url(url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):
            raise DownloadError(f"download of {url} failed: the network is unreachable ({urllib.parse.urlsplit(url).hostname} "
                                f"cannot be resolved: {reason.strerror}); fetch it where there is a network "
                                "(`zoo fetch ID`), or set ZOO_OFFLINE=1 to use only what is cached") from None
        raise DownloadError(f"download of {url} failed: {reason}") from None
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else expected_size
        digest, got = _stream(response, dest, url, expected, progress)
    if expected is not None and got != expected:
        # http.client does not raise when a server closes early during read(n): count ourselves.
        raise DownloadError(f"download of {url} cut short: expected {expected} bytes, got {got}")
    return digest


def _stream(response, dest: Path, url: str, expected: int | None, progress: bool) -> tuple[str, int]:
    hasher, got = hashlib.sha256(), 0
    with open(dest, "xb") as f, _progress_bar(url, expected, progress) as advance:
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                hasher.update(chunk)
                got += len(chunk)
                advance(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(
                f"download of {url} broke off: expected {expected if expected is not None else '?'} bytes, "
                f"got {got} ({type(e).__name__}: {e})"
            ) from None
        f.flush()
        # The bytes must be on disk before the rename publishes them into the store.
        os.fsync(f.fileno())
    return hasher.hexdigest(), got


def _progress_bar(url: str, total: int | None, enabled: bool):
    """A context yielding ``advance(n)``: a rich bar when enabled, a no-op otherwise."""
    if not enabled:
        return nullcontext(lambda n: None)
    return _RichBar(url, total)


class _RichBar:
    def __init__(self, url: str, total: int | None):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
        )
        self.name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or url
        self.total = total

    def __enter__(self):
        self.progress.__enter__()
        task = self.progress.add_task(self.name, total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)
