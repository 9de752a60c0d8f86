"""The benchmark engine: CI math, latency timing, one-row-per-task reports, crash safety."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from zoo import bench, envinfo, registry
from zoo.bench import BenchTask, TaskOutput
from zoo.errors import InputError, UnknownModelError, ZooError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = {
    "schema", "suite", "task", "model", "dataset", "split", "backend", "control", "seeds", "metrics",
    "latency_ms", "throughput", "params", "extra", "reference", "env", "timestamp", "status", "error",
}


# -- statistics -------------------------------------------------------------
def test_t_interval_of_one_to_five():
    mean, lo, hi = bench.mean_ci95([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert lo == pytest.approx(1.0368, abs=1e-4)
    assert hi == pytest.approx(4.9632, abs=1e-4)


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (4, 2.7764), (30, 2.0423), (31, 2.0395), (60, 2.0003), (120, 1.9799)])
def test_t_quantile_matches_published_table(df, expected):
    assert bench.t_quantile_975(df) == pytest.approx(expected, abs=1e-4)


def test_mean_ci95_of_one_value_has_no_interval_and_of_none_is_an_error():
    assert bench.mean_ci95([0.7]) == (0.7, None, None)
    with pytest.raises(InputError):
        bench.mean_ci95([])


def test_bootstrap_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.8).astype(float)
    large = (rng.random(10_000) < 0.8).astype(float)
    mean_s, lo_s, hi_s = bench.bootstrap_ci95(small)
    mean_l, lo_l, hi_l = bench.bootstrap_ci95(large)
    assert lo_s <= mean_s <= hi_s and lo_l <= mean_l <= hi_l
    assert mean_l == pytest.approx(large.mean())
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5
    # A binomial proportion's 95% half-width is about 1.96 * sqrt(p(1-p)/n).
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * np.sqrt(0.16 / 10_000), rel=0.15)


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch):
    values = np.arange(50) % 3 == 0
    whole = bench.bootstrap_ci95(values, n_boot=200, seed=7)
    assert bench.bootstrap_ci95(values, n_boot=200, seed=7) == whole
    monkeypatch.setattr(bench, "_BOOT_CHUNK_ELEMENTS", 50 * 7)  # 7 resamples a chunk
    assert bench.bootstrap_ci95(values, n_boot=200, seed=7) == whole


def test_measure_latency_warms_up_then_times_at_least_iters_calls():
    calls = []
    times = bench.measure_latency(lambda: calls.append(1), warmup=3, iters=10)
    assert len(times) == 10 and len(calls) == 13
    assert all(t >= 0 for t in times)
    longer = bench.measure_latency(lambda: None, warmup=0, iters=1, min_time_s=0.02)
    assert len(longer) > 1


# -- running ----------------------------------------------------------------
def _deterministic(seed):
    correct = np.array([1.0] * 180 + [0.0] * 20)
    return TaskOutput(
        metrics={"accuracy": 0.9, "macro_f1": 0.88},
        per_example={"accuracy": correct},
        latency_ms=[1.0, 1.2, 1.1, 5.0],
        batch_size=8,
        throughput=7000.0,
        params=1234,
        extra={"gflops": np.float32(0.25)},
    )


def _stochastic(seed):
    return TaskOutput(metrics={"accuracy": 0.95 + 0.01 * (seed - 2)}, latency_ms=[10.0 + seed, 12.0 + seed])


def _control(seed):
    return TaskOutput(metrics={"accuracy": 0.5}, per_example={"accuracy": np.arange(100) % 2}, latency_ms=[0.05, 0.06])


def _broken(seed):
    raise RuntimeError("boom")


def _tasks():
    return [
        BenchTask("good@toy", "toy/good", "toy/data", run=_deterministic,
                  reference={"source": "Paper 2020", "metrics": {"accuracy": 0.91}}),
        BenchTask("control@toy", "control/majority", "toy/data", control=True, run=_control),
        BenchTask("noisy@toy", "toy/noisy", "toy/data", seeds=(0, 1, 2, 3, 4), run=_stochastic),
        BenchTask("broken@toy", "toy/broken", "toy/data", run=_broken),
        BenchTask("nolatency@other", "toy/good", "toy/other", split="val", run=lambda s: TaskOutput({"f1": 0.4})),
    ]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rows = bench.run_tasks(_tasks(), suite="toy", out_dir=out, progress=False)
    return out, rows


def test_run_tasks_writes_one_row_per_task_in_the_schema(suite_run):
    out, rows = suite_run
    lines = (out / "results.jsonl").read_text().splitlines()
    stored = [json.loads(line) for line in lines]
    assert [r["task"] for r in stored] == ["good@toy", "control@toy", "noisy@toy", "broken@toy", "nolatency@other"]
    assert stored == json.loads(json.dumps(rows, default=bench._json_default))
    for row in stored:
        assert set(row) == ROW_KEYS
        assert row["schema"] == 1 and row["suite"] == "toy"
        assert row["timestamp"].endswith("+00:00")
        assert row["env"]["python"] == envinfo.fingerprint()["python"]


def test_single_seed_gets_a_bootstrap_ci_and_several_seeds_a_t_interval(suite_run):
    rows = {r["task"]: r for r in suite_run[1]}
    good = rows["good@toy"]["metrics"]
    assert good["accuracy"]["ci_method"] == "bootstrap-examples" and good["accuracy"]["n_seeds"] == 1
    lo, hi = good["accuracy"]["ci95"]
    assert lo < 0.9 < hi
    assert good["macro_f1"] == {"mean": 0.88, "ci95": None, "n_seeds": 1, "ci_method": None}
    noisy = rows["noisy@toy"]["metrics"]["accuracy"]
    mean, lo, hi = bench.mean_ci95([0.93, 0.94, 0.95, 0.96, 0.97])
    assert noisy["ci_method"] == "t-over-seeds" and noisy["n_seeds"] == 5
    assert noisy["mean"] == pytest.approx(mean) and noisy["ci95"] == pytest.approx([lo, hi])


def test_rows_carry_latency_throughput_params_and_extra(suite_run):
    rows = {r["task"]: r for r in suite_run[1]}
    good = rows["good@toy"]
    assert good["latency_ms"]["p50"] == pytest.approx(1.15)
    assert good["latency_ms"]["p50"] <= good["latency_ms"]["p95"] <= 5.0
    assert good["latency_ms"]["batch_size"] == 8
    assert good["throughput"] == {"value": 7000.0, "unit": "items/s"}
    assert good["params"] == 1234 and good["extra"]["gflops"] == pytest.approx(0.25)
    noisy = rows["noisy@toy"]["latency_ms"]  # latencies of all five seeds pooled
    assert 10.0 < noisy["p50"] <= noisy["p95"] <= 16.0
    assert rows["nolatency@other"]["latency_ms"] is None and rows["nolatency@other"]["throughput"] is None
    assert rows["control@toy"]["control"] is True


def test_a_task_that_raises_becomes_an_error_row(suite_run):
    broken = next(r for r in suite_run[1] if r["task"] == "broken@toy")
    assert broken["status"] == "error" and broken["error"] == "RuntimeError: boom (seed 0)"
    assert broken["metrics"] == {} and broken["latency_ms"] is None
    assert all(r["status"] == "ok" and r["error"] is None for r in suite_run[1] if r is not broken)


def test_leaderboard_ranks_best_first_and_marks_control_reference_and_errors(suite_run):
    out, rows = suite_run
    text = (out / "leaderboard.md").read_text()
    assert text == bench.leaderboard_markdown(rows)
    toy = text.split("## toy/data (test)")[1].split("##")[0]
    table = [line for line in toy.splitlines() if line.startswith("| ")]
    assert table[0].split(" | ")[:4] == ["| model", "backend", "accuracy", "macro_f1"]
    assert "reference" in table[0]
    models = [line.split(" | ")[0][2:] for line in table[1:]]
    assert models == ["toy/noisy", "toy/good", "control/majority (control)", "toy/broken (error)"]
    assert "accuracy 0.910 (Paper 2020)" in table[2]
    assert "0.950 [0.930, 0.970]" in table[1]
    assert "- error in broken@toy: RuntimeError: boom" in toy
    assert "## toy/other (val)" in text
    assert f"python {sys.version.split()[0]}" in text


def test_plot_is_a_png(suite_run):
    png = (suite_run[0] / "plot.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_plot_without_any_latency_still_writes_a_png(tmp_path):
    rows = bench.run_tasks([BenchTask("a", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))],
                           suite="s", out_dir=tmp_path, progress=False)
    path = bench.plot(rows, tmp_path / "sub" / "p.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert not list((tmp_path / "sub").glob(".*tmp"))  # the temp file was renamed, not left behind


def test_a_new_run_moves_the_previous_results_aside(tmp_path):
    task = BenchTask("t", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))
    bench.run_tasks([task], suite="first", out_dir=tmp_path, progress=False)
    bench.run_tasks([task], suite="second", out_dir=tmp_path, progress=False)
    current = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["suite"] for r in current] == ["second"]
    (older,) = tmp_path.glob("results.*Z.jsonl")
    assert json.loads(older.read_text())["suite"] == "first"


def test_keyboard_interrupt_stops_the_suite_and_keeps_finished_rows(tmp_path):
    def interrupted(seed):
        raise KeyboardInterrupt

    tasks = [BenchTask("done", "m", "d", run=lambda s: TaskOutput({"acc": 1.0})),
             BenchTask("stop", "m", "d", run=interrupted),
             BenchTask("never", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))]
    with pytest.raises(KeyboardInterrupt):
        bench.run_tasks(tasks, suite="s", out_dir=tmp_path, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["task"] for line in lines] == ["done"]


def test_a_run_that_returns_the_wrong_type_is_an_error_row(tmp_path):
    (row,) = bench.run_tasks([BenchTask("t", "m", "d", run=lambda s: {"acc": 1.0})],
                             suite="s", out_dir=tmp_path, progress=False)
    assert row["status"] == "error" and "must return a TaskOutput, got dict" in row["error"]


def test_duplicate_task_names_are_refused(tmp_path):
    task = BenchTask("t", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))
    with pytest.raises(InputError, match="appears twice"):
        bench.run_tasks([task, task], suite="s", out_dir=tmp_path, progress=False)


def test_progress_prints_a_line_per_task(tmp_path, capsys):
    tasks = [BenchTask("fine", "m", "d", run=lambda s: TaskOutput({"acc": 0.5})),
             BenchTask("bad", "m", "d", run=_broken)]
    bench.run_tasks(tasks, suite="s", out_dir=tmp_path, progress=True)
    out = capsys.readouterr().out
    assert "✓ fine  acc 0.500" in out and "✗ bad: RuntimeError: boom" in out


def test_run_suite_builds_the_registered_suite(tmp_path, monkeypatch):
    seen = {}

    def build(quick, backends):
        seen.update(quick=quick, backends=backends)
        return [BenchTask("t", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))]

    reg = registry.Registry()
    reg.add_suite(registry.SuiteSpec("toy-suite", build))
    monkeypatch.setattr(registry, "_registry", reg)
    monkeypatch.chdir(tmp_path)
    rows = bench.run_suite("toy-suite", quick=True, progress=False)
    assert seen == {"quick": True, "backends": ("torch",)} and rows[0]["suite"] == "toy-suite"
    bench.run_suite("toy-suite", progress=False, backends=["torch", "onnxruntime"])
    assert seen["backends"] == ("torch", "onnxruntime")
    with pytest.raises(ZooError, match="unknown backend"):
        bench.run_suite("toy-suite", progress=False, backends=["tensorrt"])
    assert (tmp_path / "bench-results" / "toy-suite" / "results.jsonl").exists()
    with pytest.raises(UnknownModelError, match="unknown suite"):
        bench.run_suite("toy-suit", progress=False)


# -- reports and environment -------------------------------------------------
def test_print_leaderboard_renders_rich_tables(suite_run):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    bench.print_leaderboard(suite_run[1], console=console)
    text = console.file.getvalue()
    assert "toy/data (test)" in text and "control/majority (control)" in text
    assert "0.950 [0.930, 0.970]" in text and "error in broken@toy" in text


def test_fingerprint_is_cached_and_complete():
    env = envinfo.fingerprint()
    for key in ("python", "platform", "cpu", "cpu_count", "numpy", "torch", "gpu", "domain_zoo", "git_commit", "git_dirty"):
        assert key in env
    assert env["numpy"] == np.__version__ and env["cpu"]
    env["python"] = "edited"
    assert envinfo.fingerprint()["python"] != "edited"  # callers get a copy of the cached dict


def test_importing_the_engine_loads_neither_torch_nor_matplotlib():
    code = "import sys, zoo.bench, zoo.envinfo; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
