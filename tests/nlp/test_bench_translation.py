"""Translation in the nlp suite: BLEU/chrF with signatures and sentence-bootstrap CIs, the copy and Apertium
control arms on a fixed subset of the Bible's test books, and a model row picked up from its card."""
import numpy as np
import pytest

from nlp import bench_translation as mt
from zoo.bench import TaskOutput, run_tasks

TINY_MARIAN = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
               "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
               "max_position_embeddings": 64}
FAST = {"size": 12, "n_boot": 50, "iters": 2, "min_time_s": 0.0}


@pytest.fixture(scope="module")
def bible():
    from nlp.bible import sword_available

    why = sword_available()
    if why:
        pytest.skip(why)
    return mt.DATASET


def test_corpus_statistic_recomputes_sacrebleu_on_resampled_sentences():
    from nlp.mt_metrics import corpus_scores, corpus_statistic

    hyps = ["the house is red", "a dog", "", "the cat is very small today"]
    refs = ["the house is red", "the dog is big", "nothing", "the cat is small today"]
    statistic = corpus_statistic(hyps, refs, n_boot=10)
    whole = corpus_scores(hyps, refs)
    assert statistic.n == 4 and statistic.of(None) == pytest.approx({"bleu": whole["bleu"], "chrf": whole["chrf"]},
                                                                    abs=1e-3)
    resample = np.array([0, 0, 3, 1])
    picked = corpus_scores([hyps[i] for i in resample], [refs[i] for i in resample])
    assert statistic.of(resample) == pytest.approx({"bleu": picked["bleu"], "chrf": picked["chrf"]}, abs=1e-3)


def test_suite_lists_the_control_arms_on_the_test_books(bible):
    from nlp.bench import suite

    tasks = {task.name: task for task in suite(quick=True)}
    copy, apertium = tasks["copy-source@bible-en-es"], tasks["apertium@bible-en-es"]
    assert copy.control and apertium.control and copy.dataset == apertium.dataset == "nlp/bible-en-es"
    assert copy.run.args[1]["size"] == mt.QUICK_TEST and mt.translation_tasks(quick=False)[0].run.args[1]["size"] is None


def test_copy_and_apertium_rows_score_the_same_fixed_subset(bible, tmp_path):
    from nlp.mt_metrics import apertium_available

    tasks = [task for task in mt.translation_tasks(quick=True) if task.control]
    for task in tasks:
        task.run = type(task.run)(task.run.func, task.run.args[0], FAST)
    rows = {row["task"]: row for row in run_tasks(tasks, suite="nlp", out_dir=tmp_path, progress=False)}
    copy = rows["copy-source@bible-en-es"]
    assert copy["status"] == "ok" and copy["extra"]["test_size"] == 12
    assert copy["extra"]["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert copy["extra"]["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6")
    for name in ("bleu", "chrf"):
        metric = copy["metrics"][name]
        assert metric["ci_method"] == "bootstrap-examples" and metric["range"] == [0.0, 100.0]
        assert metric["ci95"][0] <= metric["mean"] <= metric["ci95"][1]
    assert copy["metrics"]["chrf"]["mean"] < 30  # English is no Spanish
    first, _ = mt.held_out_pairs(mt.DATASET, 12)
    assert first.sources == mt.held_out_pairs(mt.DATASET, 12)[0].sources  # the subset is fixed
    apertium = rows["apertium@bible-en-es"]
    why = apertium_available()
    if why:  # the row says why and the suite went on
        assert apertium["status"] == "error" and why in apertium["error"]
    else:
        assert apertium["status"] == "ok" and apertium["throughput"]["unit"] == "sentences/s"
        assert apertium["metrics"]["chrf"]["mean"] > copy["metrics"]["chrf"]["mean"] + 10


@pytest.mark.slow  # trains a tiny Transformer on 48 verses first
def test_a_model_whose_card_scores_the_test_books_gets_a_row(bible, tmp_path, monkeypatch):
    import zoo.hub
    from nlp.translation_recipe import TranslationRecipe

    out = tmp_path / "tiny"
    TranslationRecipe(model="nlp/marian_translator.small", data=bible, max_train_samples=48, max_eval_samples=6,
                      vocab_size=120, max_length=32, eval_max_new_tokens=4, arch_args={"config": TINY_MARIAN},
                      train={"epochs": 1, "batch_size": 16, "device": "cpu", "progress": False}).run(out, progress=False)
    real_info = zoo.hub.info
    monkeypatch.setattr(zoo.hub, "list_models", lambda *a, **k: [str(out)] if k.get("task") == "translation" else [])
    monkeypatch.setattr(zoo.hub, "info", lambda model_id: real_info(model_id))
    assert mt.scored_on_test() == [(str(out), bible)]

    decoding = {"num_beams": 1, "max_new_tokens": 8}  # an untrained model runs to the limit: keep it short
    output = mt.run_model(str(out), bible, {**FAST, "size": 6, "decoding": decoding}, seed=0)
    assert isinstance(output, TaskOutput) and set(output.metrics) == {"bleu", "chrf"}
    assert output.resampled.n == 6 and output.throughput > 0 and output.throughput_unit == "sentences/s"
    assert len(output.latency_ms) >= 2 and output.params > 0
    assert output.extra["decoding"] == decoding and output.extra["bleu_signature"].startswith("nrefs:1|")


def test_without_apertium_its_row_says_why(bible, monkeypatch):
    import nlp.mt_metrics
    from zoo.errors import InputError

    monkeypatch.setattr(nlp.mt_metrics, "apertium_available", lambda *pair: "the apertium command is not installed")
    with pytest.raises(InputError, match="Apertium control skipped: the apertium command is not installed"):
        mt.run_apertium(bible, FAST, seed=0)
