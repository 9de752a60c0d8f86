"""The benchmark engine: run a suite's tasks and report them in one schema.

A suite (declared by a domain as a :class:`zoo.registry.SuiteSpec`) builds a
list of :class:`BenchTask`. A model task marked ``per_backend`` is run by the
engine once per backend asked for (``zoo bench SUITE --backends ...``), named
``NAME[backend]`` off torch. Each task runs once per seed and yields a
:class:`TaskOutput`; the engine folds the seeds into one result row (mean and
95% CI per metric, latency percentiles, throughput, parameters, environment
fingerprint) and writes ``results.jsonl``, ``leaderboard.md`` and ``plot.png``.

A suite times its models with :func:`measure_latency` and :func:`measure_throughput`,
reports what it is doing inside a task through :func:`step`, and may declare its
plot's x axis with a :class:`PlotSpec`. The statistics (each metric's range and kind,
its interval) live in :mod:`zoo.bench_stats`, the leaderboard and the plot in
:mod:`zoo.bench_report`; this module is the one suites and the CLI import from.

Nothing here knows a domain, and torch and matplotlib are imported only inside
the functions that need them, so ``import zoo`` stays fast.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from zoo.atomic import write_text_atomic
from zoo.bench_report import PlotSpec, leaderboard_markdown, plot, print_leaderboard, result_line
from zoo.bench_stats import ExampleStatistic, aggregate, mean_ci95
from zoo.envinfo import fingerprint
from zoo.errors import InputError, ZooError
from zoo.registry import get_registry, resolve_ref

# What suites, recipes and the CLI import from here; statistics and reports re-exported from their modules.
__all__ = ["BenchTask", "ExampleStatistic", "PlotSpec", "TaskOutput", "expand_backends", "mean_ci95", "measure_latency",
           "measure_throughput", "print_leaderboard", "run_suite", "run_tasks", "step"]

SCHEMA_VERSION = 2  # 2: metric "range", latency "mean"/"cv"/"n"/"noisy", ci_method "wilson"
RESULTS_FILE = "results.jsonl"
LEADERBOARD_FILE = "leaderboard.md"
PLOT_FILE = "plot.png"


@dataclass
class TaskOutput:
    """What one run of a task (one seed) measured.

    ``per_example`` maps a metric name to per-example values (0/1 or scores)
    whose mean is that metric. For a share of trials (:data:`METRICS`) the 0/1
    values of every seed, pooled, give the Wilson CI; otherwise, with a single
    seed, they give the bootstrap CI. ``resampled`` recomputes, for that bootstrap, the metrics that are
    no mean of per-example values (mAP, mIoU, AUC) on each resample of the examples.
    ``latency_ms`` holds per-call latencies measured after warm-up, each call
    processing ``batch_size`` items.
    """

    metrics: dict[str, float]
    per_example: dict[str, np.ndarray] | None = None
    latency_ms: list[float] | None = None
    batch_size: int = 1
    throughput: float | None = None
    throughput_unit: str = "items/s"
    params: int | None = None
    extra: dict | None = None
    resampled: ExampleStatistic | None = None


@dataclass
class BenchTask:
    """One model × dataset × backend cell of a suite.

    ``run(seed)`` is called once per seed in ``seeds``; give a stochastic task
    (one that trains, or samples) several seeds so its metrics get a CI over
    seeds. A ``per_backend`` task is declared once with ``run(seed, backend)``:
    the engine makes one cell of it per backend asked for (:func:`expand_backends`).
    ``control`` marks the suite's simple baseline. ``reference`` holds
    published numbers, ``{"source": ..., "metrics": {name: value}}``, with an optional ``note``
    saying how they were measured differently (another data set or split).
    """

    name: str
    model: str
    dataset: str
    split: str = "test"
    backend: str = "torch"
    control: bool = False
    seeds: tuple[int, ...] = (0,)
    # Keyword-only: it has no default, yet sits after fields that do.
    run: Callable[..., TaskOutput] = field(kw_only=True)
    reference: dict | None = None
    per_backend: bool = False


def expand_backends(tasks: Iterable[BenchTask], backends: Sequence[str]) -> list[BenchTask]:
    """Each ``per_backend`` task once per backend, in place and in order; other tasks as they are.

    The torch cell keeps the task's name; another backend's is ``NAME[backend]``.
    """
    import backends as backend_registry

    unknown = [b for b in backends if b not in backend_registry.names()]
    if unknown or not backends:
        raise ZooError(f"unknown backend(s) {unknown}; known: {', '.join(backend_registry.names())}")
    expanded = []
    for task in tasks:
        if not isinstance(task, BenchTask) or not task.per_backend:
            expanded.append(task)  # _check_tasks names a wrong type
            continue
        expanded += [replace(task, name=task.name + ("" if backend == "torch" else f"[{backend}]"), backend=backend,
                             per_backend=False, run=partial(task.run, backend=backend))
                     for backend in backends]
    return expanded



def measure_latency(fn: Callable[[], Any], *, warmup: int = 5, iters: int = 50, min_time_s: float = 0.0) -> list[float]:
    """Milliseconds per call of ``fn()``, after ``warmup`` untimed calls.

    Times at least ``iters`` calls, and keeps going until ``min_time_s`` has
    passed. ``fn`` must finish its work before returning (synchronise the GPU).
    """
    if iters < 1:
        raise InputError(f"iters must be >= 1, got {iters}")
    step(f"timing latency ({iters}+ calls)")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < iters or time.perf_counter() - started < min_time_s:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def measure_throughput(predict_batch: Callable[[list], Any], items: Sequence, *, batch_size: int = 256,
                       min_time_s: float = 0.5) -> float:
    """Items per second of ``predict_batch`` on one batch of ``batch_size`` of ``items`` (repeated to fill it).

    One untimed warm-up batch, then batches for at least ``min_time_s`` and at least one.
    """
    if batch_size < 1 or not items:
        raise InputError(f"throughput needs batch_size >= 1 and some items, got {batch_size} and {len(items)} items")
    step(f"timing throughput (batches of {batch_size}, {min_time_s:g} s)")
    batch = (list(items) * (batch_size // len(items) + 1))[:batch_size]
    predict_batch(batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time_s or done == 0:
        predict_batch(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)



# -- running
def _empty_measurements() -> dict[str, Any]:
    return {"metrics": {}, "latency_ms": None, "throughput": None, "params": None, "extra": None}


def _run_one(task: BenchTask, reporter: "_Reporter") -> tuple[dict[str, Any], str | None]:
    """Run every seed of ``task``; an exception becomes an error message, except interrupts."""
    outputs = []
    try:
        for seed in task.seeds:
            reporter.seed(seed, len(outputs), len(task.seeds))
            output = task.run(seed)
            if not isinstance(output, TaskOutput):
                raise InputError(f"task {task.name!r} run({seed}) must return a TaskOutput, got {type(output).__name__}")
            outputs.append(output)
            reporter.advance()
        return aggregate(outputs), None
    except Exception as exc:  # noqa: BLE001 - one broken task must not stop the suite
        seed_note = f" (seed {task.seeds[len(outputs)]})" if len(outputs) < len(task.seeds) else ""
        return _empty_measurements(), f"{type(exc).__name__}: {exc}{seed_note}"


def _row(task: BenchTask, suite: str, env: dict, measured: dict, error: str | None) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "suite": suite,
        "task": task.name,
        "model": task.model,
        "dataset": task.dataset,
        "split": task.split,
        "backend": task.backend,
        "control": bool(task.control),
        "seeds": list(task.seeds),
        **measured,
        "reference": task.reference,
        "env": env,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "error" if error else "ok",
        "error": error,
    }


def _check_tasks(tasks: Sequence[BenchTask]) -> None:
    names = set()
    for task in tasks:
        if not isinstance(task, BenchTask):
            raise InputError(f"a suite must yield BenchTask objects, got {type(task).__name__}")
        if not task.seeds:
            raise InputError(f"task {task.name!r} has no seeds; expected at least one")
        if task.name in names:
            raise InputError(f"task name {task.name!r} appears twice; each task needs its own name")
        names.add(task.name)


def _json_default(value):
    """numpy scalars and arrays in ``extra``/``reference`` become plain JSON."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def _rotate_results(out_dir: Path) -> Path | None:
    """Move an older ``results.jsonl`` aside as ``results.<its mtime>.jsonl``, so each run's file holds only its rows."""
    current = out_dir / RESULTS_FILE
    if not current.exists():
        return None
    stamp = datetime.fromtimestamp(current.stat().st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target, n = out_dir / f"results.{stamp}.jsonl", 1
    while target.exists():
        target, n = out_dir / f"results.{stamp}-{n}.jsonl", n + 1
    os.replace(current, target)
    return target


# The progress display of the suite being run, for step(); None outside run_tasks.
_active_reporter: "_Reporter | None" = None


def step(text: str) -> None:
    """Say what the running task is doing now (``"embedding 800 train sentences"``).

    Shown beside the task and seed on the progress line; a no-op outside :func:`run_tasks`.
    """
    if _active_reporter is not None:
        _active_reporter.step(text)


class _Reporter:
    """Progress output with rich; every method is a no-op when silent.

    On a terminal a live line names the task, seed and step; in a log (no
    terminal) each task start and result is one plain, unwrapped line.
    """

    def __init__(self, enabled: bool, total: int):
        self.progress = None
        self.task_label, self.seed_label = "", ""
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            from rich.table import Column

            # Plain text: ids hold brackets.
            description = TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True))
            self.progress = Progress(BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), description)
            self.live = self.progress.console.is_terminal
            self.bar = self.progress.add_task("bench", total=total)

    def __enter__(self):
        global _active_reporter
        _active_reporter = self
        if self.progress and self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        global _active_reporter
        _active_reporter = None
        if self.progress and self.live:
            self.progress.stop()

    def _print(self, text) -> None:
        # soft_wrap: a long line stays one line in a log rather than breaking at 80 columns.
        self.progress.console.print(text, soft_wrap=True, highlight=False)

    def start(self, task: BenchTask, index: int, count: int) -> None:
        if not self.progress:
            return
        from rich.markup import escape

        self.task_label = f"{task.name} [{task.backend}]"
        if self.live:
            self._describe("")
        else:
            seeds = f"{len(task.seeds)} seeds" if len(task.seeds) > 1 else f"seed {task.seeds[0]}"
            self._print(escape(f"[{index}/{count}] {self.task_label}: {seeds}"))

    def seed(self, seed: int, done: int, count: int) -> None:
        self.seed_label = f"seed {seed} ({done + 1}/{count})" if count > 1 else f"seed {seed}"
        self._describe("")

    def step(self, text: str) -> None:
        self._describe(text)

    def _describe(self, text: str) -> None:
        if self.progress and self.live:
            line = " · ".join(p for p in (self.task_label, self.seed_label, text) if p)
            # The bar and counters take about 40 columns; a long step is cut at its end, never they.
            room = max(20, self.progress.console.width - 42)
            self.progress.update(self.bar, description=line if len(line) <= room else line[:room - 1] + "…")

    def advance(self) -> None:
        if self.progress:
            self.progress.advance(self.bar)

    def finished(self, row: dict) -> None:
        if not self.progress:
            return
        from rich.markup import escape

        if row["status"] == "error":
            self._print(f"[red]✗[/red] {escape(row['task'])}: {escape(row['error'])}")
            return
        self._print(f"[green]✓[/green] {escape(result_line(row))}")

    def note(self, text: str) -> None:
        if self.progress:
            self._print(text)


def run_tasks(tasks: Sequence[BenchTask], *, suite: str, out_dir, progress: bool = True,
              plot_spec: PlotSpec | None = None, backends: Sequence[str] = ("torch",)) -> list[dict]:
    """Run each task (a ``per_backend`` one on each of ``backends``) for each of its seeds; reports to ``out_dir``.

    Every task yields one row (see the module docstring); a task that raises is
    recorded with ``status="error"`` and the suite goes on, while a
    KeyboardInterrupt stops it. Rows are appended to ``results.jsonl`` as each
    task finishes, so a crash keeps them; an older ``results.jsonl`` is first
    moved to ``results.<timestamp>.jsonl``. ``leaderboard.md`` and
    ``plot.png`` (when matplotlib is installed; x axis from ``plot_spec``) are
    written at the end. Returns the rows.
    """
    tasks = expand_backends(tasks, backends)
    _check_tasks(tasks)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _rotate_results(out_dir)
    env = fingerprint()
    rows: list[dict] = []
    with _Reporter(progress, total=sum(len(t.seeds) for t in tasks)) as reporter, \
            open(out_dir / RESULTS_FILE, "a", encoding="utf-8") as results:
        for index, task in enumerate(tasks, 1):
            reporter.start(task, index, len(tasks))
            measured, error = _run_one(task, reporter)
            row = _row(task, suite, env, measured, error)
            results.write(json.dumps(row, default=_json_default) + "\n")
            results.flush()
            rows.append(row)
            reporter.finished(row)
        write_text_atomic(out_dir / LEADERBOARD_FILE, leaderboard_markdown(rows))
        try:
            plot(rows, out_dir / PLOT_FILE, plot_spec)
        except ImportError as exc:  # matplotlib is an optional extra; the other reports still stand
            reporter.note(f"no plot: {exc}")
        reporter.note(f"wrote {RESULTS_FILE}, {LEADERBOARD_FILE} and {PLOT_FILE} to {out_dir}")
    return rows


def run_suite(name: str, *, quick: bool = False, out_dir=None, progress: bool = True,
              backends: Sequence[str] = ("torch",)) -> list[dict]:
    """Build the registered suite ``name`` and run it; reports go to ``bench-results/NAME`` by default.

    ``backends`` (``torch``, ``torch-compile``, ``onnxruntime``): every ``per_backend``
    task runs once per backend, side by side in the report; the control arm runs once.
    """
    spec = get_registry().suite(name)
    tasks = resolve_ref(spec.builder)(quick=quick)
    if not tasks:
        raise ZooError(f"suite {name!r} built no tasks (quick={quick})")
    out_dir = Path("bench-results") / name if out_dir is None else Path(out_dir)
    plot_spec = resolve_ref(spec.plot) if isinstance(spec.plot, str) else spec.plot
    return run_tasks(tasks, suite=name, out_dir=out_dir, progress=progress, plot_spec=plot_spec, backends=backends)

