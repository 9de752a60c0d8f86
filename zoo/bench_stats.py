"""Statistics of the benchmark engine: each metric's declared range and kind, its 95% interval, latency summaries.

The interval method follows from the metric's kind (:data:`METRICS`): Wilson for a share
of 0/1 trials pooled over seeds, else Student t over seeds, or a bootstrap over examples
for a single seed, clipped to the metric's range. A metric that is no mean of per-example
values (mAP, mIoU, AUC) is bootstrapped through an :class:`ExampleStatistic`, which
recomputes it on each resample of the examples. :func:`aggregate` folds one task's
per-seed outputs into a result row's measurement fields.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from zoo.errors import InputError

if TYPE_CHECKING:
    from zoo.bench import TaskOutput

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
    "spl": MetricKind(0.0, 1.0),  # success weighted by path length: a mean of per-episode values in [0, 1]
    "macro_f1": MetricKind(0.0, 1.0),
    "auc": MetricKind(0.0, 1.0),
    "dice*": MetricKind(0.0, 1.0),
    "*_gain": MetricKind(-1.0, 1.0),  # a difference of two scores in [0, 1] (e.g. map50_gain of a control arm)
    "map*": MetricKind(0.0, 1.0),
    "miou*": MetricKind(0.0, 1.0),
    "pixel_accuracy*": MetricKind(0.0, 1.0),
    "hd95*": MetricKind(0.0, None),
    "mean_length": MetricKind(0.0, None),
    "bleu": MetricKind(0.0, 100.0),  # sacreBLEU's scale, 0-100
    "chrf": MetricKind(0.0, 100.0),
}



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


@dataclass(frozen=True)
class ExampleStatistic:
    """Metrics of ``n`` examples that are no mean of per-example values (mAP, mIoU, AUC, a paired difference).

    ``of(indices)`` recomputes them, ``{name: value}``, on the examples ``indices`` (0-based, with the
    repeats a bootstrap resample draws); the engine's bootstrap calls it ``n_boot`` times.
    """

    n: int
    of: Callable[[np.ndarray], dict[str, float]]
    n_boot: int = 1000


def bootstrap_statistic_ci95(statistic: ExampleStatistic, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap 95% interval ``{name: (lo, hi)}`` of each metric ``statistic`` gives, resampling its
    examples with replacement. Resamples where a metric is undefined (NaN, e.g. an AUC of one class) are left
    out of that metric's interval; a metric never defined gets none."""
    if statistic.n < 1 or statistic.n_boot < 1:
        raise InputError(f"a bootstrap needs examples and resamples, got n={statistic.n}, n_boot={statistic.n_boot}")
    rng = np.random.default_rng(seed)
    draws = [statistic.of(rng.integers(0, statistic.n, size=statistic.n)) for _ in range(statistic.n_boot)]
    intervals = {}
    for name in draws[0]:
        values = np.array([draw[name] for draw in draws], dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = np.percentile(values, [2.5, 97.5])
            intervals[name] = (float(lo), float(hi))
    return intervals


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


def _metric_summary(name: str, outputs: Sequence[TaskOutput],
                    resampled: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Mean and 95% CI of one metric over seeds, the method chosen by the metric's declared kind; ``resampled``
    holds the single seed's bootstrap intervals of metrics that are no per-example mean."""
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
    elif len(values) == 1 and name in (resampled or {}):
        (lo, hi), method = resampled[name], "bootstrap-examples"
    else:
        lo, hi, method = None, None, None
    ci = [_finite(_clip(lo, kind)), _finite(_clip(hi, kind))] if lo is not None else None
    return {"mean": _finite(mean), "ci95": ci, "n_seeds": len(values), "ci_method": method,
            "range": [kind.low, kind.high]}


def aggregate(outputs: Sequence[TaskOutput]) -> dict[str, Any]:
    """Fold one task's per-seed outputs into the row's measurement fields."""
    names = list(dict.fromkeys(name for o in outputs for name in o.metrics))  # first-seen order
    latencies = [ms for o in outputs for ms in (o.latency_ms or [])]
    throughputs = [o.throughput for o in outputs if o.throughput is not None]
    first = outputs[0]
    resampled = bootstrap_statistic_ci95(first.resampled) if len(outputs) == 1 and first.resampled else {}
    return {
        "metrics": {name: _metric_summary(name, outputs, resampled) for name in names},
        "latency_ms": latency_summary(latencies, first.batch_size) if latencies else None,
        "throughput": {"value": float(np.mean(throughputs)), "unit": first.throughput_unit} if throughputs else None,
        "params": None if first.params is None else int(first.params),
        "extra": first.extra,
    }

