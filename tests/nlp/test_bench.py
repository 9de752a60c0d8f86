"""The nlp suite: one row per model plus the TF-IDF control, in the zoo's result schema."""
import zoo
from nlp import bench
from zoo.bench import TaskOutput


def test_suite_has_the_probe_row_and_the_control_arm():
    tasks = bench.suite(quick=True)
    names = {task.name: task for task in tasks}
    assert "text_encoder.all_minilm_l6_v2+probe@tweets" in names and "tfidf-logreg@tweets" in names
    assert names["tfidf-logreg@tweets"].control and not names["text_encoder.all_minilm_l6_v2+probe@tweets"].control
    assert {task.dataset for task in tasks if "@tweets" in task.name} == {"nlp/tweets-sentiment"}
    assert names["tfidf-logreg@tweets"].run.args[0] == (bench.QUICK_TRAIN, bench.QUICK_TEST)
    assert zoo.registry.get_registry().suite("nlp").builder == "nlp.bench:suite"


def test_probe_and_control_rows_on_small_subsets():
    timing = {"iters": 3, "throughput_batch": 8, "min_time_s": 0.0}
    # The probe's head goes into the converted graph: run it on ONNX Runtime.
    probe = bench._run_probe("nlp/text_encoder.all_minilm_l6_v2", (30, 15), timing, seed=0, backend="onnxruntime")
    control = bench._run_tfidf((30, 15), timing, seed=0)
    for output in (probe, control):
        assert isinstance(output, TaskOutput) and set(output.metrics) == {"accuracy", "macro_f1"}
        assert output.per_example["accuracy"].shape == (15,)
        assert output.metrics["accuracy"] == output.per_example["accuracy"].mean()
        assert len(output.latency_ms) == 3 and output.batch_size == 1
        assert output.throughput > 0 and output.throughput_unit == "sentences/s"
        assert output.extra["test_size"] == 15
    assert probe.params == 22_713_216 + 3 * 384 + 3
    assert probe.extra["train_size"] == 30
