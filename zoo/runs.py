"""The state of a training run in its output folder, shared by the Trainer and the recipes with their own
loop (PPO, SAC): which checkpoint a run starts from, the ``metrics.jsonl`` log, and the check that a
resumed run is the same run.

A fresh run refuses a folder that already holds checkpoints (it would mix two runs); ``resume=True``
continues from the newest complete checkpoint (or starts fresh when there is none), ``resume=PATH`` from
that one. Checkpoints themselves (sealed manifests, the newest ``keep`` kept) are :mod:`zoo.checkpoint`'s.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from zoo.atomic import write_text_atomic
from zoo.checkpoint import latest_checkpoint, list_checkpoints
from zoo.errors import CheckpointError

METRICS_FILE = "metrics.jsonl"


def find_checkpoint(out_dir: str | os.PathLike, resume: bool | str | os.PathLike) -> Path | None:
    """The checkpoint a run in ``out_dir`` starts from: None for a fresh run (refused where checkpoints
    already are), the latest for ``resume=True`` (None when there is none), else the path given."""
    if resume is False:
        existing = list_checkpoints(out_dir)
        if existing:
            raise CheckpointError(f"{out_dir} already holds checkpoints of a run (newest: {existing[-1].name}); "
                                  "resume it (`zoo finetune ... --resume`; in Python resume=True) "
                                  "or choose another output directory")
        return None
    return latest_checkpoint(out_dir) if resume is True else Path(resume)


def check_same_run(checkpoint: Path, saved: Mapping[str, Any], now: Mapping[str, Any],
                   keys: Iterable[str] | None = None, what: str = "run setup") -> None:
    """CheckpointError naming each of ``keys`` (default: all of ``now``) whose value differs between the
    checkpoint's ``saved`` settings and ``now``'s: resuming with them would not continue the same run."""
    now = json.loads(json.dumps(now))  # tuples as the checkpoint's JSON holds them
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, now {now[key]!r}" for key in (keys or now)
             if saved.get(key) != now[key]]
    if diffs:
        raise CheckpointError(f"checkpoint {checkpoint} was made by a different {what} ({'; '.join(diffs)}); "
                              "resuming would not continue the same run")


class MetricsLog:
    """A run's events, one JSON object a line in ``OUT/metrics.jsonl``, and in ``history`` (which checkpoints
    carry). ``write=False`` (a DDP rank other than 0) keeps the history only; ``echo`` prints each event."""

    def __init__(self, out_dir: str | os.PathLike, write: bool = True, echo: bool = False):
        self.path = Path(out_dir) / METRICS_FILE
        self.write, self.echo = write, echo
        self.history: list[dict[str, Any]] = []

    def log(self, event: dict[str, Any]) -> None:
        self.history.append(event)
        if self.write:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
        if self.echo:
            print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in event.items()),
                  flush=True)

    def restart(self, history: list[dict[str, Any]]) -> None:
        """Start the file afresh (``[]``) or from a checkpoint's history: events logged after that checkpoint
        by the interrupted run are logged again."""
        self.history = list(history)
        if self.write:
            write_text_atomic(self.path, "".join(json.dumps(e) + "\n" for e in self.history))
