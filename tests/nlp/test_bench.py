"""The nlp suite: one row per model plus the TF-IDF control, in the zoo's result schema."""
from functools import partial

import zoo
from nlp import bench
from zoo.bench import run_tasks


def test_suite_has_the_probe_row_and_the_control_arm():
    tasks = bench.suite(quick=True)
    names = {task.name: task for task in tasks}
    assert "all-minilm-l6-v2+probe@tweets" in names and "tfidf-logreg@tweets" in names
    assert names["tfidf-logreg@tweets"].control and not names["all-minilm-l6-v2+probe@tweets"].control
    assert {task.dataset for task in tasks} == {"nlp/tweets-sentiment"}
    assert zoo.registry.get_registry().suite("nlp").builder == "nlp.bench:suite"


def test_rows_on_small_subsets(tmp_path):
    timing = {"iters": 3, "throughput_batch": 8, "min_time_s": 0.0}
    tasks = [task for task in bench.suite(quick=True)]
    for task in tasks:
        task.run = partial(task.run.func, *task.run.args[:-2], (60, 30), timing)
    rows = run_tasks(tasks, suite="nlp", out_dir=tmp_path, progress=False)
    assert [row["status"] for row in rows] == ["ok", "ok"], [row["error"] for row in rows]
    for row in rows:
        assert set(row["metrics"]) == {"accuracy", "macro_f1"}
        assert row["metrics"]["accuracy"]["ci95"] is not None and 0 <= row["metrics"]["accuracy"]["mean"] <= 1
        assert row["latency_ms"]["p50"] > 0 and row["latency_ms"]["batch_size"] == 1
        assert row["throughput"]["unit"] == "sentences/s" and row["throughput"]["value"] > 0
        assert row["extra"]["test_size"] == 30
    probe = next(row for row in rows if not row["control"])
    assert probe["params"] == 22_713_216 + 3 * 384 + 3
    assert (tmp_path / "leaderboard.md").read_text().count("tweets-sentiment") >= 1
