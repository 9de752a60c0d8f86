"""The one property every fuzz test checks: a reader returns a result or raises a ``ZooError``.

``call(reader, fn, *args)`` runs one example. It fails the test on any other
exception, on a call that runs past its deadline (a hang), and on any socket the
call opens (an audit hook sees ``socket.connect`` and ``socket.getaddrinfo``).
Examples are counted per reader; ``benchmarks/fuzz.py`` reads the counts.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import ZooError

DEADLINE_S = float(os.environ.get("ZOO_FUZZ_DEADLINE", "30"))
EXAMPLES = collections.Counter()
_SOCKET_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname")
_watching: list[str] = []


def _audit(event: str, args) -> None:
    if _watching and event in _SOCKET_EVENTS:
        _watching.append(f"{event}{args!r}")


sys.addaudithook(_audit)


class Hang(Exception):
    """A call that ran past ``DEADLINE_S``."""


@contextmanager
def _deadline(seconds: float):
    def expire(signum, frame):
        raise Hang(f"no result after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(reader: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``None`` when it raised a ``ZooError``; anything else fails the test."""
    EXAMPLES[reader] += 1
    _watching[:] = ["watching"]
    try:
        with _deadline(DEADLINE_S):
            return fn(*args, **kwargs)
    except ZooError:
        return None
    finally:
        opened, _watching[:] = _watching[1:], []
        assert not opened, f"{reader}: opened a socket: {opened[:3]}"


def files_under(root: Path) -> set[Path]:
    """Every path under ``root`` (to check that a call wrote nothing outside its target)."""
    return {p for p in Path(root).rglob("*")}


def write_stats() -> None:
    """Write the per-reader example counts to ``$ZOO_FUZZ_STATS`` (set by ``benchmarks/fuzz.py``)."""
    target = os.environ.get("ZOO_FUZZ_STATS")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(EXAMPLES.items())), indent=1))
