"""The benchmark engine: run a suite's tasks and report them in one schema.

A suite (declared by a domain as a :class:`zoo.registry.SuiteSpec`) builds a
list of :class:`BenchTask`. A model task marked ``per_backend`` is run by the
engine once per backend asked for (``zoo bench SUITE --backends ...``), named
``NAME[backend]`` off torch. Each task runs once per seed and yields a
:class:`TaskOutput`; the engine folds the seeds into one result row (mean and
95% CI per metric, latency percentiles, throughput, parameters, environment
fingerprint) and writes ``results.jsonl``, ``leaderboard.md`` and ``plot.png``.

Each metric's range and kind is declared once, in :data:`METRICS`; the interval
method follows from it (Wilson for a share of trials, else t over seeds or a
bootstrap over examples, clipped to the range). A suite times its models with
:func:`measure_latency` and :func:`measure_throughput`, reports what it is doing
inside a task through :func:`step`, and may declare its plot's x axis with a
:class:`PlotSpec`.

Nothing here knows a domain, and torch and matplotlib are imported only inside
the functions that need them, so ``import zoo`` stays fast.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from zoo.atomic import atomic_path, write_text_atomic
from zoo.envinfo import fingerprint
from zoo.errors import InputError, ZooError
from zoo.registry import get_registry, resolve_ref

SCHEMA_VERSION = 2  # 2: metric "range", latency "mean"/"cv"/"n"/"noisy", ci_method "wilson"
RESULTS_FILE = "results.jsonl"
LEADERBOARD_FILE = "leaderboard.md"
PLOT_FILE = "plot.png"

# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30 (checked against scipy).
_T975 = (
    12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836,
    2.446911851, 2.364624252, 2.306004135, 2.262157163, 2.228138852,
    2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546,
    2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447,
    2.079613845, 2.073873068, 2.068657610, 2.063898562, 2.059538553,
    2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
)
_Z975 = 1.959963984540054
# Cap on resampled indices held at once by the bootstrap (about 32 MB of int64).
_BOOT_CHUNK_ELEMENTS = 4_000_000
# Latency whose p95 exceeds this multiple of its p50 is too noisy to rank by. A tail ratio, not
# the CV: one scheduler stall among 200 calls lifts the CV above 1 yet leaves p50 and p95 sound.
LATENCY_SPREAD_LIMIT = 3.0


@dataclass(frozen=True)
class MetricKind:
    """What a metric's values can be: its range, and whether it is a share of independent 0/1 trials."""

    low: float | None = None
    high: float | None = None
    proportion: bool = False


UNBOUNDED = MetricKind()
# The one place metric ranges are declared, by name or fnmatch pattern (first match wins).
# A metric not listed is unbounded (e.g. a return): its CI is never clipped.
METRICS: dict[str, MetricKind] = {
    "accuracy": MetricKind(0.0, 1.0, proportion=True),
    "top5": MetricKind(0.0, 1.0, proportion=True),
    "success": MetricKind(0.0, 1.0, proportion=True),
    "macro_f1": MetricKind(0.0, 1.0),
    "auc": MetricKind(0.0, 1.0),
    "dice*": MetricKind(0.0, 1.0),
    "hd95*": MetricKind(0.0, None),
    "mean_length": MetricKind(0.0, None),
}


@dataclass
class TaskOutput:
    """What one run of a task (one seed) measured.

    ``per_example`` maps a metric name to per-example values (0/1 or scores)
    whose mean is that metric. For a share of trials (:data:`METRICS`) the 0/1
    values of every seed, pooled, give the Wilson CI; otherwise, with a single
    seed, they give the bootstrap CI.
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


@dataclass
class BenchTask:
    """One model × dataset × backend cell of a suite.

    ``run(seed)`` is called once per seed in ``seeds``; give a stochastic task
    (one that trains, or samples) several seeds so its metrics get a CI over
    seeds. A ``per_backend`` task is declared once with ``run(seed, backend)``:
    the engine makes one cell of it per backend asked for (:func:`expand_backends`).
    ``control`` marks the suite's simple baseline. ``reference`` holds
    published numbers, ``{"source": ..., "metrics": {name: value}}``.
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


# -- statistics -------------------------------------------------------------
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise InputError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    # Cornish-Fisher expansion around the normal quantile; error < 2e-6 for df > 30.
    z, v = _Z975, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_ci95(values: Iterable[float]) -> tuple[float, float | None, float | None]:
    """Mean and Student-t 95% CI ``(mean, lo, hi)``; ``lo``/``hi`` are None for one value."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise InputError("mean_ci95 needs at least one value, got none")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    half = t_quantile_975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def bootstrap_ci95(per_example_values, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap 95% CI ``(mean, lo, hi)`` of per-example values."""
    x = np.asarray(per_example_values, dtype=float).ravel()
    if x.size == 0:
        raise InputError("bootstrap_ci95 needs at least one value, got none")
    if n_boot < 1:
        raise InputError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // x.size)
    means = np.concatenate([
        x[rng.integers(0, x.size, size=(min(chunk, n_boot - start), x.size))].mean(axis=1)
        for start in range(0, n_boot, chunk)
    ])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(x.mean()), float(lo), float(hi)


def wilson_ci95(successes: int, trials: int) -> tuple[float, float, float]:
    """Share ``successes / trials`` and its Wilson score 95% interval, always inside [0, 1]."""
    if trials < 1 or not 0 <= successes <= trials:
        raise InputError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    p, z2 = successes / trials, _Z975**2
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = _Z975 / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2))
    # At 0/n and n/n the bound is exactly 0 or 1; rounding would leave 1e-17 off.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return p, lo, hi


def metric_kind(name: str) -> MetricKind:
    """The declared range and kind of metric ``name`` (:data:`METRICS`); unbounded when undeclared."""
    from fnmatch import fnmatchcase

    return next((kind for pattern, kind in METRICS.items() if fnmatchcase(name, pattern)), UNBOUNDED)


def latency_summary(samples_ms: Sequence[float], batch_size: int = 1) -> dict[str, Any]:
    """p50, p95, mean and coefficient of variation of latency samples; ``noisy`` when p95 > LATENCY_SPREAD_LIMIT × p50."""
    x = np.asarray(samples_ms, dtype=float)
    if x.size == 0:
        raise InputError("latency_summary needs at least one sample, got none")
    mean = float(x.mean())
    cv = float(x.std(ddof=1)) / mean if x.size > 1 and mean > 0 else None
    p50, p95 = float(np.percentile(x, 50)), float(np.percentile(x, 95))
    return {
        "p50": p50,
        "p95": p95,
        "mean": mean,
        "cv": cv,
        "n": int(x.size),
        "noisy": p95 > LATENCY_SPREAD_LIMIT * p50,
        "batch_size": batch_size,
    }


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


# -- aggregation ------------------------------------------------------------
def _finite(value) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def _clip(value: float | None, kind: MetricKind) -> float | None:
    if value is None:
        return None
    if kind.low is not None:
        value = max(value, kind.low)
    if kind.high is not None:
        value = min(value, kind.high)
    return value


def _pooled_trials(name: str, outputs: Sequence[TaskOutput]) -> np.ndarray | None:
    """Every seed's per-example 0/1 outcomes of ``name`` pooled, when each seed has them; else None."""
    parts = [(o.per_example or {}).get(name) for o in outputs]
    if any(p is None or np.size(p) == 0 for p in parts):
        return None
    pooled = np.concatenate([np.asarray(p, dtype=float).ravel() for p in parts])
    return pooled if np.isin(pooled, (0.0, 1.0)).all() else None


def _metric_summary(name: str, outputs: Sequence[TaskOutput]) -> dict[str, Any]:
    """Mean and 95% CI of one metric over seeds, the method chosen by the metric's declared kind."""
    kind = metric_kind(name)
    having = [o for o in outputs if name in o.metrics]
    values = [o.metrics[name] for o in having]
    per_example = (having[0].per_example or {}).get(name)
    trials = _pooled_trials(name, having) if kind.proportion else None
    # The reported mean is always the tasks' own metric; the interval only sizes its uncertainty.
    mean = float(np.mean(values))
    if trials is not None:
        _, lo, hi = wilson_ci95(int(trials.sum()), trials.size)
        method = "wilson"
    elif len(values) >= 2:
        mean, lo, hi = mean_ci95(values)
        method = "t-over-seeds"
    elif per_example is not None and np.size(per_example) > 0:
        _, lo, hi = bootstrap_ci95(per_example)
        method = "bootstrap-examples"
    else:
        lo, hi, method = None, None, None
    ci = [_finite(_clip(lo, kind)), _finite(_clip(hi, kind))] if lo is not None else None
    return {"mean": _finite(mean), "ci95": ci, "n_seeds": len(values), "ci_method": method,
            "range": [kind.low, kind.high]}


def _aggregate(outputs: Sequence[TaskOutput]) -> dict[str, Any]:
    """Fold one task's per-seed outputs into the row's measurement fields."""
    names = list(dict.fromkeys(name for o in outputs for name in o.metrics))  # first-seen order
    latencies = [ms for o in outputs for ms in (o.latency_ms or [])]
    throughputs = [o.throughput for o in outputs if o.throughput is not None]
    first = outputs[0]
    return {
        "metrics": {name: _metric_summary(name, outputs) for name in names},
        "latency_ms": latency_summary(latencies, first.batch_size) if latencies else None,
        "throughput": {"value": float(np.mean(throughputs)), "unit": first.throughput_unit} if throughputs else None,
        "params": None if first.params is None else int(first.params),
        "extra": first.extra,
    }


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
        return _aggregate(outputs), None
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


# -- running ----------------------------------------------------------------
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
        summary = "  ".join(f"{name} {_fmt_metric(m)}" for name, m in row["metrics"].items())
        latency = row["latency_ms"]
        timing = f"  p50 {_fmt_ms(latency['p50'])} ms (CV {_fmt_cv(latency)})" if latency else ""
        self._print(f"[green]✓[/green] {escape(row['task'])}  {escape(summary)}{escape(timing)}")

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


# -- reports ----------------------------------------------------------------
def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    magnitude = abs(value)
    return f"{value:.1f}" if magnitude >= 100 else f"{value:.2f}" if magnitude >= 10 else f"{value:.3f}"


def _fmt_metric(metric: dict) -> str:
    text = _fmt(metric["mean"])
    if metric.get("ci95"):
        lo, hi = metric["ci95"]
        text += f" [{_fmt(lo)}, {_fmt(hi)}]"
    return text


def _fmt_ms(ms: float) -> str:
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3g}"


def _fmt_cv(latency: dict) -> str:
    """The coefficient of variation, marked when too noisy to rank by."""
    cv = latency.get("cv")
    if cv is None:
        return "—"
    return f"{cv:.2f}" + (" noisy" if latency.get("noisy") else "")


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _fmt_throughput(throughput: dict | None) -> str:
    if not throughput:
        return "—"
    value = throughput["value"]
    return f"{value:.0f} {throughput['unit']}" if value >= 100 else f"{value:.3g} {throughput['unit']}"


def _fmt_reference(reference: dict | None) -> str:
    if not reference:
        return ""
    numbers = ", ".join(f"{k} {_fmt(v)}" for k, v in (reference.get("metrics") or {}).items())
    source = reference.get("source")
    return f"{numbers} ({source})" if source else numbers


def _groups(rows: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (dataset, split), in first-seen order: numbers on different splits are not ranked together."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["split"]), []).append(row)
    return groups


def _primary_metric(rows: Sequence[dict]) -> str | None:
    """The first metric of the first row that has any."""
    return next((next(iter(r["metrics"])) for r in rows if r.get("metrics")), None)


def _ranked(rows: Sequence[dict], primary: str | None) -> list[dict]:
    """Best primary metric first; rows without it, then errors, last."""
    def key(row):
        mean = (row["metrics"].get(primary) or {}).get("mean") if primary else None
        return (row["status"] != "ok", mean is None, -(mean or 0.0))
    return sorted(rows, key=key)


def _table(rows: Sequence[dict]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body cells and notes (errors, noisy latency) of one dataset's table, shared by Markdown and rich."""
    ranked = _ranked(rows, _primary_metric(rows))
    metric_names = list(dict.fromkeys(name for r in ranked for name in r["metrics"]))
    with_reference = any(r.get("reference") for r in ranked)
    header = ["model", "backend", *metric_names, *(["reference"] if with_reference else []),
              "p50 ms", "p95 ms", "CV", "throughput", "params"]
    body, notes = [], []
    for row in ranked:
        model = row["model"] + (" (control)" if row["control"] else "") + (" (error)" if row["status"] != "ok" else "")
        metrics = [_fmt_metric(row["metrics"][n]) if n in row["metrics"] else "—" for n in metric_names]
        latency = row.get("latency_ms")
        batch = f" @bs{latency['batch_size']}" if latency and latency["batch_size"] != 1 else ""
        timing = [_fmt_ms(latency["p50"]) + batch, _fmt_ms(latency["p95"]), _fmt_cv(latency)] if latency else ["—"] * 3
        reference = [_fmt_reference(row.get("reference"))] if with_reference else []
        body.append([model, row["backend"], *metrics, *reference, *timing,
                     _fmt_throughput(row.get("throughput")), _fmt_count(row.get("params"))])
        if row["status"] != "ok":
            notes.append(f"error in {row['task']}: {row['error']}")
        elif latency and latency.get("noisy"):
            notes.append(f"latency of {row['task']} too noisy to rank (p95 {latency['p95'] / latency['p50']:.1f}× p50, "
                         f"over {LATENCY_SPREAD_LIMIT:g}×; CV {latency['cv']:.2f}): rerun on an idle machine")
    return header, body, notes


def env_summary(env: dict) -> str:
    """One line naming the environment a row was measured in."""
    torch = env.get("torch") or "not installed"
    if env.get("cuda"):
        torch += f" (CUDA {env['cuda']})"
    git = env.get("git_commit")
    git = "commit unknown" if not git else git[:12] + (" (dirty)" if env.get("git_dirty") else "")
    return (
        f"python {env.get('python')} · torch {torch} · numpy {env.get('numpy')} · "
        f"domain-zoo {env.get('domain_zoo')} · CPU {env.get('cpu')} × {env.get('cpu_count')} · "
        f"GPU {env.get('gpu') or 'none'} · git {git}"
    )


def _envs(rows: Sequence[dict]) -> list[dict]:
    """The distinct fingerprints among ``rows`` (one, unless rows from several runs are mixed)."""
    seen = {json.dumps(r.get("env") or {}, sort_keys=True): r.get("env") or {} for r in rows}
    return list(seen.values())


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_tables(rows: Sequence[dict]) -> list[str]:
    """One Markdown table (with its notes) per dataset and split; cells are never cut."""
    lines = []
    for (dataset, split), group in _groups(rows).items():
        header, body, notes = _table(group)
        lines += [f"## {dataset} ({split})", "",
                  "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in body]
        lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
    return lines


_LEGEND = (f"Metrics are mean [95% CI]: Wilson for a share of trials (accuracy, success), else t over seeds "
           f"or a bootstrap over examples for a single seed, within the metric's range. CV is the latency's "
           f"coefficient of variation (std / mean); a row whose p95 exceeds {LATENCY_SPREAD_LIMIT:g}× its p50 is marked "
           f"noisy, not to rank by.")


def leaderboard_markdown(rows: Sequence[dict]) -> str:
    """A Markdown leaderboard: one table per dataset and split, best primary metric first."""
    suites = ", ".join(dict.fromkeys(r["suite"] for r in rows)) or "(none)"
    lines = [f"# Benchmark: {suites}", "", *_markdown_tables(rows), _LEGEND, ""]
    lines += ["## Environment", ""] + [f"- {env_summary(env)}" for env in _envs(rows)]
    return "\n".join(lines) + "\n"


def print_leaderboard(rows: Sequence[dict], console=None) -> None:
    """Print the leaderboard: rich tables on a terminal, plain Markdown tables otherwise (logs, pipes).

    Ids and numbers are never cut: cells wrap between words, and a table too wide
    for the terminal even so is printed in the plain layout.
    """
    from rich.console import Console

    console = console or Console()
    tables = [_rich_table(dataset, split, group) for (dataset, split), group in _groups(rows).items()]
    # Measured without the console's cap (which would clip the minimum to its width).
    unbounded = console.options.update_width(10**6)
    fits = all(console.measure(table, options=unbounded).minimum <= console.width for table, _ in tables)
    if not console.is_terminal or not fits:
        console.out("\n".join([*_markdown_tables(rows), _LEGEND, *map(env_summary, _envs(rows))]), highlight=False)
        return
    from rich.text import Text

    for table, notes in tables:
        console.print(table)
        for note in notes:
            console.print(Text(note, style="red" if note.startswith("error") else "yellow"))
    for env in _envs(rows):
        console.print(Text(env_summary(env), style="dim"))


def _rich_table(dataset: str, split: str, rows: Sequence[dict]):
    """A rich table whose cells wrap only between words: no column is narrower than its longest word."""
    from rich.table import Table
    from rich.text import Text

    header, body, notes = _table(rows)
    table = Table(title=f"{dataset} ({split})", title_justify="left")
    for i, name in enumerate(header):
        longest_word = max(len(word) for cells in [header, *body] for word in cells[i].split() or [""])
        table.add_column(name, justify="left" if i < 2 else "right", min_width=longest_word)
    for cells in body:
        # Text, not markup strings: ids and CIs contain square brackets.
        table.add_row(*(Text(c) for c in cells))
    return table, notes


@dataclass(frozen=True)
class PlotSpec:
    """The x axis of a suite's plot (y is each panel's primary metric with its CI).

    ``x`` is a dotted path into a result row (``"latency_ms.p50"``,
    ``"extra.train_env_steps"``). Rows without an x value (a random control,
    a model trained offline) are drawn as horizontal lines across the panel.
    """

    x: str = "latency_ms.p50"
    x_label: str = "latency p50 (ms, log scale)"
    log_x: bool = True


def _row_value(row: dict, path: str) -> float | None:
    value: Any = row
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def plot(rows: Sequence[dict], path, spec: PlotSpec | None = None) -> Path:
    """Write a PNG: primary metric (with its CI) against ``spec.x``, one panel per dataset and split.

    Rows without the metric are left out; control arms are gray squares (or dashed lines without an x value).
    """
    # The object API with the Agg canvas: no pyplot, so the process's GUI backend is untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = spec or PlotSpec()
    panels = []
    for (dataset, split), group in _groups(rows).items():
        primary = _primary_metric(group)
        points = [r for r in group if r["status"] == "ok"
                  and primary in r["metrics"] and r["metrics"][primary]["mean"] is not None]
        if any(_row_value(r, spec.x) is not None for r in points):
            panels.append((f"{dataset} ({split})", primary, points))
    ncols = max(1, min(3, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = Figure(figsize=(6.0 * ncols, 4.4 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, primary, points) in zip(axes, panels):
        _plot_panel(ax, spec, title, primary, points)
    for ax in axes[len(panels):]:
        ax.axis("off")
    if not panels:
        axes[0].text(0.5, 0.5, f"no rows with {spec.x_label} and metrics to plot", ha="center", va="center")
    return _save_png_atomic(fig, Path(path))


def _plot_panel(ax, spec: PlotSpec, title: str, primary: str, points: Sequence[dict]) -> None:
    placed = [r for r in points if _row_value(r, spec.x) is not None]
    xs = [_row_value(r, spec.x) for r in placed]
    right_half = math.sqrt(min(xs) * max(xs)) if spec.log_x else (min(xs) + max(xs)) / 2
    for control, marker, color, label in ((False, "o", "tab:blue", "model"), (True, "s", "tab:gray", "control")):
        arm = [r for r in placed if r["control"] == control]
        if not arm:
            continue
        x = [_row_value(r, spec.x) for r in arm]
        y = [r["metrics"][primary]["mean"] for r in arm]
        ax.errorbar(x, y, yerr=_yerr(arm, primary), fmt=marker, color=color, capsize=3, label=label)
        for r, xi, yi in zip(arm, x, y):
            # Labels right of the middle point leftwards, so none runs off the panel's right edge.
            left = xi > right_half
            ax.annotate(_point_label(r), (xi, yi), textcoords="offset points", xytext=(-5 if left else 5, 4),
                        ha="right" if left else "left", fontsize=7)
    _plot_references(ax, placed, primary, spec)
    for r in points:
        if _row_value(r, spec.x) is None:
            _plot_level(ax, r, primary)
    ax.margins(x=0.15, y=0.12)
    if spec.log_x:
        ax.set_xscale("log")
        _log_ticks(ax, min(xs), max(xs))
    ax.set_xlabel(spec.x_label)
    ax.set_ylabel(primary)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _log_ticks(ax, low: float, high: float) -> None:
    """Labelled ticks at 1, 2, 5 × 10^k over a narrow range (decades only over a wide one), compactly written.

    matplotlib's default labels every minor tick of a short log range, and they overlap.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    subs = (1.0, 2.0, 5.0) if math.log10(high / low) < 2 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _fmt_tick(value)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _fmt_tick(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _point_label(row: dict) -> str:
    return row["model"].removeprefix("control/") + ("" if row["backend"] in ("torch", "numpy", "sklearn")
                                                      else f" [{row['backend']}]")


def _yerr(rows: Sequence[dict], primary: str) -> np.ndarray:
    means = [r["metrics"][primary]["mean"] for r in rows]
    cis = [r["metrics"][primary]["ci95"] or [m, m] for r, m in zip(rows, means)]
    return np.abs(np.array([[m - lo, hi - m] for m, (lo, hi) in zip(means, cis)], dtype=float).T)


def _plot_references(ax, rows: Sequence[dict], primary: str, spec: PlotSpec) -> None:
    """Published numbers beside the rows that have one: a hollow diamond at the row's x."""
    cited = [(_row_value(r, spec.x), (r.get("reference") or {}).get("metrics", {}).get(primary)) for r in rows]
    cited = [(x, y) for x, y in cited if isinstance(y, (int, float))]
    if cited:
        ax.scatter(*zip(*cited), marker="D", facecolors="none", edgecolors="tab:red", label="published", zorder=3)


def _plot_level(ax, row: dict, primary: str) -> None:
    """A row without an x value: a horizontal line at its mean, its CI shaded, labelled at the left."""
    metric = row["metrics"][primary]
    color = "tab:gray" if row["control"] else "tab:green"
    kind = "control" if row["control"] else "model (no value on this x axis)"
    # One legend entry per kind of line, however many rows draw one.
    label = kind if kind not in ax.get_legend_handles_labels()[1] else "_nolegend_"
    ax.axhline(metric["mean"], color=color, linestyle="--" if row["control"] else ":", linewidth=1.2, label=label)
    if metric["ci95"]:
        ax.axhspan(*metric["ci95"], color=color, alpha=0.12, linewidth=0)
    ax.annotate(_point_label(row), (0.01, metric["mean"]), xycoords=("axes fraction", "data"),
                textcoords="offset points", xytext=(0, 3), fontsize=7, color=color)


def _save_png_atomic(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
