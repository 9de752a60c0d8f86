"""The benchmark engine: CI math, latency timing, one-row-per-task reports, crash safety."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from zoo import bench, bench_report, bench_stats, envinfo, registry
from tests.zoo import toy
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
    assert bench_stats.t_quantile_975(df) == pytest.approx(expected, abs=1e-4)


def test_mean_ci95_of_one_value_has_no_interval_and_of_none_is_an_error():
    assert bench.mean_ci95([0.7]) == (0.7, None, None)
    with pytest.raises(InputError):
        bench.mean_ci95([])


def test_bootstrap_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.8).astype(float)
    large = (rng.random(10_000) < 0.8).astype(float)
    mean_s, lo_s, hi_s = bench_stats.bootstrap_ci95(small)
    mean_l, lo_l, hi_l = bench_stats.bootstrap_ci95(large)
    assert lo_s <= mean_s <= hi_s and lo_l <= mean_l <= hi_l
    assert mean_l == pytest.approx(large.mean())
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5
    # A binomial proportion's 95% half-width is about 1.96 * sqrt(p(1-p)/n).
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * np.sqrt(0.16 / 10_000), rel=0.15)


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch):
    values = np.arange(50) % 3 == 0
    whole = bench_stats.bootstrap_ci95(values, n_boot=200, seed=7)
    assert bench_stats.bootstrap_ci95(values, n_boot=200, seed=7) == whole
    monkeypatch.setattr(bench_stats, "_BOOT_CHUNK_ELEMENTS", 50 * 7)  # 7 resamples a chunk
    assert bench_stats.bootstrap_ci95(values, n_boot=200, seed=7) == whole


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
        assert row["schema"] == 2 and row["suite"] == "toy"
        assert row["timestamp"].endswith("+00:00")
        assert row["env"]["python"] == envinfo.fingerprint()["python"]


def test_a_share_of_trials_gets_a_wilson_ci_and_several_seeds_a_t_interval(suite_run):
    rows = {r["task"]: r for r in suite_run[1]}
    good = rows["good@toy"]["metrics"]
    assert good["accuracy"]["ci_method"] == "wilson" and good["accuracy"]["n_seeds"] == 1
    assert good["accuracy"]["ci95"] == pytest.approx(list(bench_stats.wilson_ci95(180, 200)[1:]))
    assert good["accuracy"]["range"] == [0.0, 1.0]
    assert good["macro_f1"] == {"mean": 0.88, "ci95": None, "n_seeds": 1, "ci_method": None, "range": [0.0, 1.0]}
    noisy = rows["noisy@toy"]["metrics"]["accuracy"]  # no per-example trials: t over its five seeds
    mean, lo, hi = bench.mean_ci95([0.93, 0.94, 0.95, 0.96, 0.97])
    assert noisy["ci_method"] == "t-over-seeds" and noisy["n_seeds"] == 5
    assert noisy["mean"] == pytest.approx(mean) and noisy["ci95"] == pytest.approx([lo, hi])


def test_wilson_matches_a_hand_computation():
    # 8 of 10, z = 1.959964: centre (0.8 + z²/20) / (1 + z²/10) = 0.7167, half-width
    # z / (1 + z²/10) * sqrt(0.8 * 0.2 / 10 + z²/400) = 0.2265: [0.4902, 0.9433].
    p, lo, hi = bench_stats.wilson_ci95(8, 10)
    assert p == 0.8 and lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94332, abs=1e-4)
    assert bench_stats.wilson_ci95(0, 10)[1] == 0.0 and bench_stats.wilson_ci95(0, 10)[2] == pytest.approx(0.27753, abs=1e-4)
    assert bench_stats.wilson_ci95(10, 10)[2] == 1.0 and bench_stats.wilson_ci95(10, 10)[1] == pytest.approx(0.72247, abs=1e-4)
    with pytest.raises(InputError):
        bench_stats.wilson_ci95(3, 2)


def _success_over_seeds(outcomes_per_seed):
    """A control-like task: each seed a few episodes, success = their 0/1 share."""
    return [TaskOutput({"success": float(np.mean(o)), "mean_return": 100.0 * float(np.mean(o)) - 50.0},
                       per_example={"success": np.asarray(o, dtype=float)}) for o in outcomes_per_seed]


@pytest.mark.parametrize("outcomes", [
    [[1], [0], [1]],  # the case: 3 seeds of one episode gave a t interval of [-1.101, 1.768]
    [[0], [0], [0]], [[1], [1], [1]], [[0, 0]] * 10, [[1, 1]] * 10, [[1, 0]] * 10, [[1]],
])
def test_a_proportion_ci_always_lies_in_zero_one_and_pools_the_trials(outcomes):
    summary = bench_stats._metric_summary("success", _success_over_seeds(outcomes))
    lo, hi = summary["ci95"]
    pooled = np.concatenate(outcomes)
    assert summary["ci_method"] == "wilson" and 0.0 <= lo <= summary["mean"] <= hi <= 1.0
    assert [lo, hi] == pytest.approx(list(bench_stats.wilson_ci95(int(pooled.sum()), pooled.size)[1:]))


def test_bounded_metrics_without_trials_are_clipped_and_unbounded_ones_are_not():
    outputs = [TaskOutput({"dice": d, "hd95": h, "mean_return": r})
               for d, h, r in ((0.99, 0.1, -500.0), (0.5, 9.0, 100.0), (0.98, 0.2, 20.0))]
    dice, hd95, ret = (bench_stats._metric_summary(n, outputs) for n in ("dice", "hd95", "mean_return"))
    assert dice["ci_method"] == "t-over-seeds" and dice["ci95"][1] == 1.0 and dice["range"] == [0.0, 1.0]
    assert hd95["ci95"][0] == 0.0 and hd95["range"] == [0.0, None]
    assert ret["ci95"] == pytest.approx(list(bench.mean_ci95([-500.0, 100.0, 20.0])[1:]))
    assert ret["range"] == [None, None]
    assert bench_stats.metric_kind("dice_liver") == bench_stats.METRICS["dice*"]


def test_latency_summary_reports_spread_and_flags_noisy_samples():
    steady = bench_stats.latency_summary([1.0, 1.1, 0.9, 1.0, 1.0])
    assert steady["p50"] == 1.0 and steady["mean"] == pytest.approx(1.0) and steady["n"] == 5
    assert steady["cv"] == pytest.approx(np.std([1.0, 1.1, 0.9, 1.0, 1.0], ddof=1) / 1.0)
    assert not steady["noisy"]
    # The loaded machine: identical calls from 0.97 to 200 ms.
    loaded = bench_stats.latency_summary([0.97, 1.0, 200.0, 1.1, 150.0, 0.99], batch_size=4)
    assert loaded["noisy"] and loaded["p95"] > bench_stats.LATENCY_SPREAD_LIMIT * loaded["p50"] and loaded["batch_size"] == 4
    assert bench_stats.latency_summary([3.0])["cv"] is None
    # One stall among 200 calls: a high CV, yet p50 and p95 are sound, so the row still ranks.
    stall = bench_stats.latency_summary([1.0] * 199 + [300.0])
    assert stall["cv"] > 5 and not stall["noisy"]


def test_rows_carry_latency_throughput_params_and_extra(suite_run):
    rows = {r["task"]: r for r in suite_run[1]}
    good = rows["good@toy"]
    assert good["latency_ms"]["p50"] == pytest.approx(1.15)
    assert good["latency_ms"]["p50"] <= good["latency_ms"]["p95"] <= 5.0
    assert good["latency_ms"]["batch_size"] == 8
    assert good["latency_ms"] == bench_stats.latency_summary([1.0, 1.2, 1.1, 5.0], batch_size=8)
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
    assert text == bench_report.leaderboard_markdown(rows)
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
    path = bench_report.plot(rows, tmp_path / "sub" / "p.png")
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

    def build(quick):
        seen.update(quick=quick)
        return [BenchTask("t", "m", "d", run=lambda s: TaskOutput({"acc": 1.0}))]

    reg = registry.Registry()
    reg.add(registry.SuiteSpec("toy-suite", build))
    monkeypatch.setattr(registry, "_registry", reg)
    monkeypatch.chdir(tmp_path)
    rows = bench.run_suite("toy-suite", quick=True, progress=False)
    assert seen == {"quick": True} and rows[0]["suite"] == "toy-suite"
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


# -- readable output ----------------------------------------------------------
LONG_IDS = ["toy/unet3d.ct_phantom-with-a-long-suffix", "toy/mlp_gaussian.ppo_invertedpendulum_v5",
            "toy/all-minilm-l6-v2 + logreg probe"]


def _long_id_rows(tmp_path):
    tasks = [BenchTask(f"t{i}", model, "toy/data", reference={"source": "A paper with a long title, 2021",
                                                              "metrics": {"accuracy": 0.9}},
                       run=lambda s: TaskOutput({"accuracy": 0.9, "macro_f1": 0.85, "dice": 0.8},
                                                per_example={"accuracy": np.ones(10)},
                                                latency_ms=[1.0, 1.1, 30.0], throughput=123.0, params=10**6))
             for i, model in enumerate(LONG_IDS)]
    return bench.run_tasks(tasks, suite="s", out_dir=tmp_path, progress=False)


def test_leaderboard_in_a_log_is_plain_with_every_id_whole(tmp_path):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=80)  # a file, not a terminal: what a log or pipe gets
    assert not console.is_terminal
    bench.print_leaderboard(_long_id_rows(tmp_path), console=console)
    lines = console.file.getvalue().splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    for model in LONG_IDS:
        # Each result is one line that starts with its whole id, however wide the line.
        assert sum(line.startswith(f"| {model} | ") for line in rows) == 1
    assert all(line.endswith(" |") for line in rows)  # no row broken across lines
    assert not any("…" in line for line in lines)


@pytest.mark.parametrize("width", [60, 120, 250])
def test_leaderboard_on_a_terminal_never_cuts_an_id(tmp_path, width):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    bench.print_leaderboard(_long_id_rows(tmp_path), console=console)
    text = console.file.getvalue()
    assert all(model in text for model in LONG_IDS) and "…" not in text
    # Nothing cropped at the right edge either: the last column and the longest words are all there.
    assert "params" in text and "1.0M" in text and "(A paper with a long title, 2021)" in " ".join(text.split())
    assert max(map(len, text.splitlines())) <= width or text.startswith("## toy/data")


def test_result_lines_do_not_wrap_in_a_log(tmp_path, capsys):
    name = "a-task-name-long-enough-to-pass-eighty-columns@some-dataset-with-a-long-name[onnxruntime]"
    bench.run_tasks([BenchTask(name, "m", "d", run=lambda s: TaskOutput({"accuracy": 0.5, "macro_f1": 0.5},
                                                                        latency_ms=[1.0, 2.0]))],
                    suite="s", out_dir=tmp_path, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert f"[1/1] {name} [torch]: seed 0" in lines
    (done,) = [line for line in lines if line.startswith("✓")]
    assert done.startswith(f"✓ {name}  accuracy 0.500") and done.endswith("(CV 0.47)")


def test_leaderboard_shows_the_latency_spread_and_names_noisy_rows(tmp_path):
    tasks = [BenchTask("steady", "m/steady", "d", run=lambda s: TaskOutput({"acc": 0.9}, latency_ms=[1.0, 1.0, 1.1])),
             BenchTask("loaded", "m/loaded", "d", run=lambda s: TaskOutput({"acc": 0.8}, latency_ms=[0.97, 200.0, 1.0]))]
    text = bench_report.leaderboard_markdown(bench.run_tasks(tasks, suite="s", out_dir=tmp_path, progress=False))
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "| p50 ms | p95 ms | CV |" in header
    assert "| m/steady | torch | 0.900 | 1.00 | 1.09 | 0.06 |" in text
    assert "1.71 noisy |" in text
    assert "- latency of loaded too noisy to rank (p95 180.1× p50, over 3×; CV 1.71): rerun on an idle machine" in text
    assert "steady too noisy" not in text


def test_the_engine_runs_a_per_backend_task_once_per_backend_and_names_each(tmp_path, monkeypatch):
    calls = []

    def run(seed, backend):
        calls.append((seed, backend))
        return TaskOutput({"acc": 1.0}, latency_ms=[1.0, 1.2])

    def build(quick):
        return [BenchTask("m@d", "m", "d", per_backend=True, run=run),
                BenchTask("control@d", "control/c", "d", backend="sklearn", control=True,
                          run=lambda s: TaskOutput({"acc": 0.5}))]

    reg = registry.Registry()
    reg.add(registry.SuiteSpec("toy-suite", build))
    monkeypatch.setattr(registry, "_registry", reg)
    rows = bench.run_suite("toy-suite", out_dir=tmp_path, progress=False, backends=["torch", "onnxruntime"])
    assert [(r["task"], r["backend"]) for r in rows] == [
        ("m@d", "torch"), ("m@d[onnxruntime]", "onnxruntime"), ("control@d", "sklearn")]
    assert calls == [(0, "torch"), (0, "onnxruntime")] and all(r["status"] == "ok" for r in rows)
    (row,) = bench.run_tasks(build(False)[:1], suite="s", out_dir=tmp_path / "default", progress=False)
    assert (row["task"], row["backend"]) == ("m@d", "torch")  # torch unless told otherwise
    with pytest.raises(ZooError, match="unknown backend"):
        bench.run_tasks(build(False), suite="s", out_dir=tmp_path, progress=False, backends=[])


def test_measure_throughput_times_at_least_one_full_batch():
    sizes = []
    per_second = bench.measure_throughput(lambda batch: sizes.append(len(batch)), ["a", "b", "c"], batch_size=8,
                                          min_time_s=0.0)
    assert sizes == [8, 8] and per_second > 0  # a warm-up batch, then one timed batch of items repeated
    with pytest.raises(InputError, match="some items"):
        bench.measure_throughput(lambda batch: None, [], batch_size=8)


def test_step_names_what_the_running_task_does(tmp_path):
    seen = []

    class Recorder(bench._Reporter):
        def _describe(self, text):
            seen.append((self.task_label, self.seed_label, text))

    def run(seed):
        bench.step("embedding 800 sentences")
        return TaskOutput({"acc": 1.0}, latency_ms=bench.measure_latency(lambda: None, warmup=0, iters=2))

    reporter = Recorder(True, total=2)
    with reporter:
        reporter.start(BenchTask("probe@tweets", "m", "d", seeds=(0, 1), run=run), 1, 1)
        bench._run_one(BenchTask("probe@tweets", "m", "d", seeds=(0, 1), run=run), reporter)
    assert ("probe@tweets [torch]", "seed 1 (2/2)", "embedding 800 sentences") in seen
    assert ("probe@tweets [torch]", "seed 0 (1/2)", "timing latency (2+ calls)") in seen
    bench.step("outside a run is a no-op")  # no reporter active: nothing raised


def test_a_suite_declares_its_plot_axis_and_rows_without_it_are_lines(tmp_path, monkeypatch):
    drawn = {}
    real_panel = bench_report._plot_panel

    def spy(ax, spec, title, primary, points):
        real_panel(ax, spec, title, primary, points)
        drawn[title] = (ax.get_xlabel(), [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"])

    monkeypatch.setattr(bench_report, "_plot_panel", spy)
    spec = bench.PlotSpec(x="extra.train_env_steps", x_label="environment steps in training (log scale)")
    tasks = [BenchTask("ppo", "r/ppo", "CartPole-v1", run=lambda s: TaskOutput({"mean_return": 500.0},
                                                                                 extra={"train_env_steps": 100_000})),
             BenchTask("random", "control/random", "CartPole-v1", control=True,
                       run=lambda s: TaskOutput({"mean_return": 22.0}))]
    bench.run_tasks(tasks, suite="s", out_dir=tmp_path, progress=False, plot_spec=spec)
    assert drawn == {"CartPole-v1 (test)": ("environment steps in training (log scale)", [22.0])}
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_MAGIC)


def test_a_registered_suite_runs_with_the_plot_it_names(toy_registry, tmp_path, monkeypatch):
    drawn = []
    real_panel = bench_report._plot_panel
    monkeypatch.setattr(bench_report, "_plot_panel", lambda ax, spec, *rest: drawn.append(spec) or real_panel(ax, spec, *rest))
    rows = bench.run_suite("toy", out_dir=tmp_path, progress=False)
    assert [(r["task"], r["status"], r["control"]) for r in rows] == [("mlp", "ok", False), ("majority", "ok", True)]
    assert 0 <= rows[1]["metrics"]["accuracy"]["mean"] <= 1 and rows[0]["metrics"]["accuracy"]["ci_method"] == "wilson"
    assert drawn == [toy.PLOT]  # the "module:NAME" the suite declared, resolved


# -- properties (Hypothesis) ---------------------------------------------------
# 60 examples a property with a fixed seed, so the suite is short and repeatable;
# ZOO_BENCH_EXAMPLES=N runs a campaign of N fresh random examples a property.
from hypothesis import given, settings, strategies as st  # noqa: E402

_CAMPAIGN = __import__("os").environ.get("ZOO_BENCH_EXAMPLES")
_PROPERTY = settings(max_examples=int(_CAMPAIGN or 60), derandomize=not _CAMPAIGN, deadline=None, database=None)


@_PROPERTY
@given(st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_property_wilson_lies_in_zero_one_around_the_share(successes_trials):
    successes, trials = successes_trials
    p, lo, hi = bench_stats.wilson_ci95(successes, trials)
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert (lo == 0.0) == (successes == 0) and (hi == 1.0) == (successes == trials)


_FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@_PROPERTY
@given(name=st.sampled_from(["accuracy", "success", "dice", "dice_liver", "macro_f1", "auc", "hd95", "mean_length",
                             "mean_return"]),
       seeds=st.lists(st.tuples(_FINITE, st.lists(st.sampled_from([0.0, 1.0]), max_size=20)), min_size=1, max_size=8))
def test_property_every_ci_stays_in_the_metric_declared_range(name, seeds):
    kind = bench_stats.metric_kind(name)
    clip = lambda v: min(max(v, kind.low if kind.low is not None else -np.inf), kind.high if kind.high is not None else np.inf)  # noqa: E731
    outputs = [TaskOutput({name: clip(value)}, per_example={name: np.array(trials)} if trials else None)
               for value, trials in seeds]
    summary = bench_stats._metric_summary(name, outputs)
    assert summary["range"] == [kind.low, kind.high]
    if summary["ci95"] is not None:
        lo, hi = summary["ci95"]
        assert lo <= hi
        assert kind.low is None or lo >= kind.low
        assert kind.high is None or hi <= kind.high


@_PROPERTY
@given(st.lists(st.floats(1e-4, 1e5, allow_nan=False), min_size=1, max_size=300))
def test_property_latency_summary_is_ordered_and_flags_by_the_tail(samples):
    summary = bench_stats.latency_summary(samples)
    assert min(samples) <= summary["p50"] <= summary["p95"] <= max(samples) and summary["n"] == len(samples)
    assert summary["noisy"] == (summary["p95"] > bench_stats.LATENCY_SPREAD_LIMIT * summary["p50"])
    assert summary["cv"] is None if len(samples) == 1 else summary["cv"] >= 0


_ID = st.text(st.characters(codec="ascii", categories=["L", "N", "P", "S"]), min_size=1, max_size=60)


@_PROPERTY
@given(ids=st.lists(_ID, min_size=1, max_size=4, unique=True), width=st.integers(40, 300),
       terminal=st.booleans())
def test_property_no_layout_ever_cuts_an_id(ids, width, terminal):
    from rich.console import Console

    rows = [bench._row(BenchTask(f"t{i}", model, "d", run=_broken), "s", {}, bench_stats.aggregate(
        [TaskOutput({"accuracy": 0.5}, per_example={"accuracy": np.array([0.0, 1.0])}, latency_ms=[1.0, 9.0])]), None)
        for i, model in enumerate(ids)]
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    bench.print_leaderboard(rows, console=console)
    text = console.file.getvalue()
    for model in ids:
        assert model in text or bench_report._md_cell(model) in text


@_PROPERTY
@given(per_backend=st.lists(st.booleans(), max_size=6),
       backends=st.lists(st.sampled_from(["torch", "torch-compile", "onnxruntime", "tensorrt", ""]), max_size=4,
                         unique=True))
def test_property_backend_expansion_is_one_uniquely_named_cell_per_backend_or_a_zoo_error(per_backend, backends):
    tasks = [BenchTask(f"t{i}", "m", "d", per_backend=flag, run=lambda seed, backend=None: TaskOutput({"acc": 1.0}))
             for i, flag in enumerate(per_backend)]
    try:
        expanded = bench.expand_backends(tasks, backends)
    except ZooError as exc:
        assert "unknown backend" in str(exc)
        assert not backends or any(b not in ("torch", "torch-compile", "onnxruntime") for b in backends)
        return
    assert backends and set(backends) <= {"torch", "torch-compile", "onnxruntime"}
    assert len(expanded) == sum(len(backends) if flag else 1 for flag in per_backend)
    assert len({t.name for t in expanded}) == len(expanded) and not any(t.per_backend for t in expanded)
    cells = [(t.name, t.backend) for t in expanded]
    assert cells == [(f"t{i}" + ("" if b == "torch" else f"[{b}]"), b) for i, flag in enumerate(per_backend)
                     for b in (backends if flag else ["torch"])]
