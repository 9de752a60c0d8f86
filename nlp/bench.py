"""The ``nlp`` benchmark suite: tweet sentiment (``nlp/tweets-sentiment``, test split), then translation.

Rows:

* every registered pretrained NLP text classifier, as it is;
* every pretrained sentence encoder as a classifier through the embedding probe (frozen
  embeddings + logistic regression written as a linear head): the zoo model that
  ``predict`` runs on raw strings is what is timed;
* the control arm: TF-IDF over word 1–2-grams + logistic regression (scikit-learn).

Each row: accuracy and macro-F1 (bootstrap 95% CI over test examples), latency per
sentence p50/p95 (``predict`` on one raw string), sentences/s (``predict`` on
batches of raw strings). ``quick`` trains on 800 and tests on 400 sentences
(stratified subsets) so ``zoo bench nlp --quick`` stays within about two minutes on a
small CPU; the full suite uses the whole splits.

Translation (English→Spanish on the test books of ``nlp/bible-en-es``: BLEU and chrF, the
copy-the-source and Apertium control arms) is :mod:`nlp.bench_translation`.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from nlp.bench_translation import translation_tasks
from zoo.bench import BenchTask, TaskOutput, measure_latency, measure_throughput, step

DATASET = "nlp/tweets-sentiment"
QUICK_TRAIN, QUICK_TEST = 800, 400


def suite(quick: bool = False) -> list[BenchTask]:
    """Tasks of the ``nlp`` suite; ``quick`` uses small subsets and fewer latency samples.

    Each model runs on each backend asked for (the tokenizer stays outside the graph).
    """
    from zoo.hub import list_models

    sizes = (QUICK_TRAIN, QUICK_TEST) if quick else (None, None)
    timing = {"iters": 20 if quick else 100, "throughput_batch": 64 if quick else 256, "min_time_s": 0.5 if quick else 2.0}
    tasks = [
        BenchTask(
            name=f"{model_id.split('/', 1)[1]}@tweets",
            model=model_id,
            dataset=DATASET,
            per_backend=True,
            run=partial(_run_classifier, model_id, sizes, timing),
        )
        for model_id in list_models("nlp/*", task="text-classification", pretrained=True)
    ]
    tasks += [
        BenchTask(
            name=f"{model_id.split('/', 1)[1]}+probe@tweets",
            model=f"{model_id} + logreg probe",
            dataset=DATASET,
            per_backend=True,
            run=partial(_run_probe, model_id, sizes, timing),
        )
        for model_id in list_models("nlp/*", task="sentence-embedding", pretrained=True)
    ]
    tasks.append(
        BenchTask(
            name="tfidf-logreg@tweets",
            model="control/tfidf-logreg",
            dataset=DATASET,
            backend="sklearn",
            control=True,
            run=partial(_run_tfidf, sizes, timing),
        )
    )
    return tasks + translation_tasks(quick)


def _data(sizes, seed: int):
    """Train and test splits, cut to stratified subsets of the given sizes (None: whole split)."""
    from nlp.datasets import load_splits, stratified_split

    step(f"loading {DATASET}")
    splits = load_splits(DATASET)
    out = []
    for dataset, size in zip((splits.train, splits.test), sizes):
        if size is not None and size < len(dataset):
            keep = stratified_split(dataset.labels, {"keep": size / len(dataset)}, seed=seed)["keep"]
            dataset = dataset.subset(keep)
        out.append(dataset)
    return splits.classes, out[0], out[1]


def _run_classifier(model_id: str, sizes, timing: dict, seed: int, backend: str) -> TaskOutput:
    from nlp.recipes import evaluate
    from zoo.hub import load

    _, _, test = _data(sizes, seed)
    step(f"loading {model_id} [{backend}]")
    model = load(model_id, device="cpu", backend=backend)
    step(f"evaluating on {len(test)} test sentences")
    return _model_output(model, test, evaluate(model, test), timing)


def _run_probe(model_id: str, sizes, timing: dict, seed: int, backend: str) -> TaskOutput:
    """Embed train/test once, fit the probe, write it into a zoo classifier, and time that classifier."""
    from sklearn.linear_model import LogisticRegression

    from nlp.recipes import embed, head_logits, metrics_from_logits, set_linear_head
    from zoo.hub import load

    classes, train, test = _data(sizes, seed)
    step(f"loading {model_id}")
    model = load(model_id, num_classes=len(classes), device="cpu")
    step(f"embedding {len(train)} train and {len(test)} test sentences")
    x_train = embed(model, train.inputs(), batch_size=64)
    x_test = embed(model, test.inputs(), batch_size=64)
    step("fitting the logistic-regression probe")
    probe = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed).fit(x_train, train.labels)
    model.card.labels = list(classes)
    set_linear_head(model.net, probe, len(classes))
    logits = head_logits(model.net, x_test)
    step(f"converting to {backend}")
    model = model.to_backend(backend)  # the probe's head goes into the converted graph
    return _model_output(model, test, metrics_from_logits(logits, test.labels), timing, logits=logits,
                         extra={"train_size": len(train), "probe": "LogisticRegression(C=1, balanced)"})


def _model_output(model, test, metrics: dict, timing: dict, logits=None, extra=None) -> TaskOutput:
    texts = test.inputs()
    if logits is None:
        step(f"predicting {len(texts)} test sentences")
        predicted = np.asarray([p["index"] for p in model.predict(texts, batch_size=64)])
    else:
        predicted = np.asarray(logits.argmax(-1))
    correct = (predicted == test.labels).astype(np.float64)
    return TaskOutput(
        metrics={"accuracy": float(metrics["accuracy"]), "macro_f1": float(metrics["macro_f1"])},
        per_example={"accuracy": correct},
        latency_ms=measure_latency(lambda: model.predict(texts[0]), warmup=3, iters=timing["iters"]),
        throughput=measure_throughput(lambda batch: model.predict(batch, batch_size=64), texts,
                                      batch_size=timing["throughput_batch"], min_time_s=timing["min_time_s"]),
        throughput_unit="sentences/s",
        params=model.num_params,
        extra={"test_size": len(test), **(extra or {})},
    )


def _run_tfidf(sizes, timing: dict, seed: int) -> TaskOutput:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline

    _, train, test = _data(sizes, seed)
    step(f"fitting TF-IDF + logistic regression on {len(train)} sentences")
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=seed),
    ).fit(train.texts, train.labels)
    predicted = pipeline.predict(test.texts)
    correct = (predicted == test.labels).astype(np.float64)
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    return TaskOutput(
        metrics={"accuracy": float(correct.mean()), "macro_f1": float(f1_score(test.labels, predicted, average="macro"))},
        per_example={"accuracy": correct},
        latency_ms=measure_latency(lambda: pipeline.predict_proba(test.texts[:1]), warmup=3, iters=timing["iters"]),
        throughput=measure_throughput(pipeline.predict_proba, test.texts, batch_size=timing["throughput_batch"],
                                      min_time_s=timing["min_time_s"]),
        throughput_unit="sentences/s",
        params=int(classifier.coef_.size + classifier.intercept_.size),
        extra={"test_size": len(test), "train_size": len(train), "vocabulary": len(vectorizer.vocabulary_)},
    )

