"""Translation in the ``nlp`` suite: English→Spanish on the test books of ``nlp/bible-en-es``.

Rows:

* every pretrained translation model whose card records a test metric on a translation dataset,
  on that dataset's test split (greedy decoding, :data:`DECODING`);
* control arms: copying the source (what a model that learned nothing scores), and Apertium's
  rule-based ``eng-spa`` (``apertium -u eng-spa``, Debian ``apertium`` + ``apertium-eng-spa``,
  GPL), run as one external command over all sentences, never linked. Without it installed its
  row records why (``status: error``, the reason and the ``apt-get`` line); the suite goes on.

Each row: sacreBLEU BLEU and chrF (signatures in ``extra``) with percentile-bootstrap 95% CIs over
test sentences (each resample re-sums the sentences' n-gram statistics into a corpus score,
:func:`nlp.mt_metrics.corpus_statistic`). Model rows add latency per sentence (``predict`` on one
sentence) and sentences/s (``predict`` on batches of :data:`THROUGHPUT_BATCH`); Apertium's row
its sentences/s over the one call. ``quick`` scores a fixed random subset of :data:`QUICK_TEST`
test verses (the same for every row); the full suite all of them. Without the Bible's Debian
packages (``sword-text-web``, ``sword-text-sparv``) no translation row is made.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

import numpy as np

from zoo.bench import BenchTask, TaskOutput, measure_latency, measure_throughput, step

DATASET = "nlp/bible-en-es"
QUICK_TEST = 100
SUBSET_SEED = 0  # the quick subset is fixed: every row and every run scores the same verses
DECODING = {"num_beams": 1, "max_new_tokens": 160}
THROUGHPUT_BATCH = 32


def translation_tasks(quick: bool = False) -> list[BenchTask]:
    """The translation cells of ``zoo bench nlp``: model rows, then the copy and Apertium control arms."""
    from nlp.bible import sword_available

    cells = scored_on_test()
    datasets = list(dict.fromkeys([DATASET] * (sword_available() is None) + [d for _, d in cells]))
    size = QUICK_TEST if quick else None
    settings = {"size": size, "n_boot": 200 if quick else 1000, "iters": 10 if quick else 50,
                "min_time_s": 0.5 if quick else 2.0, "decoding": DECODING}
    tasks = [BenchTask(name=f"{model_id.split('/', 1)[1]}@{_short(dataset)}", model=model_id, dataset=dataset,
                       run=partial(run_model, model_id, dataset, settings))
             for model_id, dataset in cells]
    for dataset in datasets:
        tasks += [BenchTask(name=f"copy-source@{_short(dataset)}", model="control/copy-source", dataset=dataset,
                            backend="python", control=True, run=partial(run_copy, dataset, settings)),
                  BenchTask(name=f"apertium@{_short(dataset)}", model="control/apertium",
                            dataset=dataset, backend="apertium", control=True,
                            run=partial(run_apertium, dataset, settings))]
    return tasks


def scored_on_test() -> list[tuple[str, str]]:
    """``(model id, dataset)`` for every pretrained NLP translation model and each dataset its card records a test
    metric on (cards only, no build)."""
    from zoo.hub import info, list_models

    cells = []
    for model_id in list_models("nlp/*", task="translation", pretrained=True):
        metrics = info(model_id).metrics
        cells += [(model_id, dataset) for dataset in dict.fromkeys(
            m["dataset"] for m in metrics if m.get("split") == "test" and m.get("dataset"))]
    return cells


def _short(dataset: str) -> str:
    return dataset.split("/")[-1]


def held_out_pairs(dataset: str, size: int | None):
    """The dataset's test split (a fixed random ``size`` of it, in corpus order, when given) and its language pair."""
    from zoo.errors import InputError
    from zoo.registry import get_registry, resolve_ref

    step(f"loading {dataset}")
    splits = resolve_ref(get_registry().dataset(dataset).loader)()
    if splits.test is None:
        raise InputError(f"{dataset} has no test split; the suite scores translations on test sentences only")
    test = splits.test
    if size is not None and size < len(test):
        test = test.subset(sorted(np.random.default_rng(SUBSET_SEED).permutation(len(test))[:size].tolist()))
    return test, (splits.source_lang, splits.target_lang)


def scored(hypotheses: list[str], test, n_boot: int, extra: dict[str, Any] | None = None, **timing) -> TaskOutput:
    """BLEU and chrF of ``hypotheses`` against the test targets, their bootstrap over sentences and signatures."""
    from nlp.mt_metrics import corpus_scores, corpus_statistic

    step(f"scoring {len(test)} translations (sacreBLEU)")
    scores = corpus_scores(hypotheses, test.targets)
    statistic = corpus_statistic(hypotheses, test.targets, n_boot)
    return TaskOutput(metrics={"bleu": scores["bleu"], "chrf": scores["chrf"]}, resampled=statistic,
                      throughput_unit="sentences/s", **timing,
                      extra={"test_size": len(test), "bleu_signature": scores["bleu_signature"],
                             "chrf_signature": scores["chrf_signature"], **(extra or {})})


def run_model(model_id: str, dataset: str, settings: dict, seed: int) -> TaskOutput:
    """A translation model's BLEU/chrF on the test sentences (greedy), latency per sentence and sentences/s."""
    import torch

    from zoo.hub import load

    torch.manual_seed(seed)
    test, (source_lang, target_lang) = held_out_pairs(dataset, settings["size"])
    step(f"loading {model_id}")
    model = load(model_id, device="cpu").eval()
    sources = list(test.sources)
    translate = partial(model.predict, source_lang=source_lang, target_lang=target_lang, **settings["decoding"])
    step(f"translating {len(sources)} test sentences")
    hypotheses = translate(sources, batch_size=THROUGHPUT_BATCH)
    timing = {
        "latency_ms": measure_latency(lambda: translate(sources[:1]), warmup=2, iters=settings["iters"]),
        "throughput": measure_throughput(lambda batch: translate(batch, batch_size=THROUGHPUT_BATCH), sources,
                                         batch_size=THROUGHPUT_BATCH, min_time_s=settings["min_time_s"]),
        "params": model.num_params,
    }
    return scored(hypotheses, test, settings["n_boot"], {"decoding": settings["decoding"],
                                                         "throughput_batch": THROUGHPUT_BATCH}, **timing)


def run_copy(dataset: str, settings: dict, seed: int) -> TaskOutput:
    """The copy-the-source control: each source sentence is its own 'translation'."""
    from nlp.mt_metrics import copy_source

    test, _ = held_out_pairs(dataset, settings["size"])
    return scored(copy_source(test.sources), test, settings["n_boot"])


def run_apertium(dataset: str, settings: dict, seed: int) -> TaskOutput:
    """Apertium's rule-based translations of the test sentences (one subprocess call, lines aligned), and its
    sentences/s over that call (start-up included); an InputError saying why when it is not installed."""
    from nlp.mt_metrics import APERTIUM_PAIRS, apertium_available, apertium_translate
    from zoo.errors import InputError

    test, pair = held_out_pairs(dataset, settings["size"])
    why = apertium_available(*pair)
    if why:
        raise InputError(f"Apertium control skipped: {why}")
    step(f"translating {len(test)} test sentences with apertium")
    started = time.perf_counter()
    hypotheses = apertium_translate(test.sources, *pair)
    rate = len(test) / (time.perf_counter() - started)
    return scored(hypotheses, test, settings["n_boot"], {"command": f"apertium -u {APERTIUM_PAIRS[pair]}"},
                  throughput=rate)
