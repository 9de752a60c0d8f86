"""Fine-tuned all-MiniLM-L6-v2 vs. the TF-IDF control: macro-F1 on nlp/tweets-sentiment's test split.

Both arms train on the tweets' train split and are scored on the whole test split
(3,724 tweets). The control is the ``nlp`` suite's: TF-IDF over word 1–2-grams +
logistic regression (balanced class weights). The fine-tune is the
``text-classification`` recipe (full fine-tune, AdamW 5e-5 / head 1e-2, linear
warm-up and decay, length-bucketed dynamic padding, balanced class weights, best
epoch by validation macro-F1).

The control and the fine-tune must fit a CPU budget (``--budget-min``, default 30).
The script times a few training steps first, then trains on as many training tweets
as fit the budget for ``--epochs`` epochs (all of them when they fit), leaving room
for the per-epoch validation and the final test pass. ``--with-probe`` adds the
embedding-probe row, timed on its own after the budgeted part.

    python -m benchmarks.nlp_finetune [--budget-min 30] [--epochs 2] [--max-length 128] [--with-probe] [--smoke]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks.load_overhead import write, zoo_env

DATASET = "nlp/tweets-sentiment"
MARGIN = 0.92  # of the budget planned for; the rest absorbs timing noise


def control(train, test) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                             LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=0))
    pipeline.fit(train.texts, train.labels)
    predicted = pipeline.predict(test.texts)
    return {"macro_f1": float(f1_score(test.labels, predicted, average="macro")),
            "accuracy": float(accuracy_score(test.labels, predicted)), "train_size": len(train),
            "test_size": len(test), "time_s": time.perf_counter() - start}


def seconds_per_sample(train, args) -> tuple[float, float]:
    """Training and inference seconds per tweet, from timed steps on length-bucketed batches.

    The steps run as the Trainer runs them (its fused AdamW, gradient clipping), so
    the plan does not over-estimate and leave budget unused.
    """
    import torch

    import zoo
    from nlp.recipes import LengthBucketSampler
    from zoo.train import TrainConfig, default_optimizer

    model = zoo.load("nlp/text_encoder.all_minilm_l6_v2", num_classes=3, device=args.device)
    model.card.preprocessing["max_length"] = args.max_length
    adapter = type(model.adapter)(model.card, model.adapter.paths)
    rng = np.random.default_rng(0)
    subset = train.subset(rng.permutation(len(train))[: args.batch_size * 60])
    encoded = adapter.encode(subset.inputs())
    sampler = LengthBucketSampler(len(encoded), args.batch_size, lengths=[len(e) for e in encoded])
    batches = list(sampler)[:20]
    optimizer = default_optimizer(model, TrainConfig(lr=1e-5))
    model.train()
    timed, count = 0.0, 0
    for i, batch in enumerate(batches):
        inputs, targets = adapter.collate([(encoded[j], int(subset.labels[j])) for j in batch])
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**{k: v.to(model.device) for k, v in inputs.items()}),
                                                 targets.to(model.device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 3:  # after warm-up
            timed += time.perf_counter() - start
            count += len(batch)
    model.eval()
    start = time.perf_counter()
    adapter.run(model.net, encoded[: args.batch_size * 8], 64, device=model.device)
    infer = (time.perf_counter() - start) / (args.batch_size * 8)
    return timed / max(count, 1), infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=30.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--with-probe", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="64 tweets, 1 epoch: checks the script runs")
    args = parser.parse_args()
    started = time.perf_counter()

    from nlp.datasets import load_splits
    from nlp.recipes import EmbeddingProbeRecipe, TextClassificationRecipe

    splits = load_splits(DATASET)
    train, val, test = splits.train, splits.val, splits.test
    if args.smoke:
        args.epochs = 1
        rng = np.random.default_rng(0)
        train = train.subset(np.sort(rng.permutation(len(train))[:64]))
        test = test.subset(np.sort(rng.permutation(len(test))[:64]))
    baseline = control(train, test)

    plan: dict = {"budget_min": args.budget_min, "epochs": args.epochs}
    if args.smoke:
        n_train, max_eval = 64, 64
    else:
        train_s, infer_s = seconds_per_sample(train, args)
        spent = time.perf_counter() - started
        eval_s = infer_s * (len(val) * args.epochs + len(test)) + 60  # + loading and saving
        room = args.budget_min * 60 * MARGIN - spent - eval_s
        n_train = int(min(len(train), max(room, 0) / (train_s * args.epochs)))
        max_eval = None
        plan.update(train_s_per_sample=train_s, infer_s_per_sample=infer_s, planned_train_samples=n_train,
                    full_train_size=len(train))
        if n_train < 1000:
            raise SystemExit(f"the budget allows only {n_train} training tweets at {train_s * 1000:.1f} ms each; "
                             "raise --budget-min or lower --epochs")

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        recipe = TextClassificationRecipe(
            model="nlp/text_encoder.all_minilm_l6_v2", data=DATASET, max_length=args.max_length, max_train_samples=n_train,
            max_eval_samples=max_eval, train={"epochs": args.epochs, "batch_size": args.batch_size,
                                              "device": args.device, "precision": "fp32", "seed": 0},
        )
        result = recipe.run(f"{out}/finetune", progress=False)
        finetune_done = time.perf_counter()
        finetune_s = finetune_done - start
        tuned = {m["name"]: m["value"] for m in result.metrics if m["split"] == "test"}
        rows = {"finetuned": {**tuned, "train_size": n_train, "epochs": args.epochs, "time_s": finetune_s,
                              "val": {m["name"]: m["value"] for m in result.metrics if m["split"] == "val"}},
                "control_tfidf_logreg": baseline}
        if args.with_probe:
            start = time.perf_counter()
            probe = EmbeddingProbeRecipe(data=DATASET, max_train_samples=64 if args.smoke else None,
                                         max_eval_samples=max_eval, device=args.device).run(f"{out}/probe", progress=False)
            rows["embedding_probe"] = {**{m["name"]: m["value"] for m in probe.metrics if m["split"] == "test"},
                                       "time_s": time.perf_counter() - start}
    budgeted = finetune_done - started
    write({
        "benchmark": "nlp_finetune" + (".smoke" if args.smoke else ""),
        "dataset": f"{DATASET} (test split, {len(test)} tweets)",
        "metric": "macro_f1",
        "results": rows,
        "delta_macro_f1_finetuned_minus_control": rows["finetuned"]["macro_f1"] - baseline["macro_f1"],
        "plan": plan,
        "recipe": recipe.to_dict(),
        "budgeted_time_s": budgeted,  # control + planning + fine-tune + its evaluations
        "within_budget": budgeted <= args.budget_min * 60,
        "total_time_s": time.perf_counter() - started,
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
