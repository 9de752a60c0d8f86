"""Reports of the benchmark engine: the leaderboard (Markdown file, rich tables) and the plot of its result rows.

Rows are grouped by dataset and split (numbers on different splits are never ranked
together) and ranked by their primary metric, the first one a row reports. matplotlib
and rich are imported only inside the functions that draw or print.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.bench_stats import LATENCY_SPREAD_LIMIT


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


def result_line(row: dict) -> str:
    """A finished task's row in one line, as the progress display prints it: metrics, then p50 latency and CV."""
    summary = "  ".join(f"{name} {_fmt_metric(m)}" for name, m in row["metrics"].items())
    latency = row["latency_ms"]
    timing = f"  p50 {_fmt_ms(latency['p50'])} ms (CV {_fmt_cv(latency)})" if latency else ""
    return f"{row['task']}  {summary}{timing}"


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
    said = "; ".join(part for part in (reference.get("source"), reference.get("note")) if part)
    return f"{numbers} ({said})" if said else numbers


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=120)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
