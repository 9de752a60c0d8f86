"""Decoding throughput of a Marian translation model: zoo ``predict`` vs ``transformers`` ``generate``, same weights.

Both translate the same test sentences (the first ``--sentences`` verses of ``nlp/bible-en-es``'s test books)
at batch 32 with the same settings, greedy and then beam 4 (``max_new_tokens`` 128, no sampling).
transformers is driven as its documentation shows: the model's ``tokenizer.json`` in a
``PreTrainedTokenizerFast``, batches in the file's order padded to their longest sentence,
``model.generate``, ``batch_decode``. zoo's ``predict`` batches the sentences longest first
(less padding). Throughput is sentences/s, the median of ``--rounds`` alternating rounds; the
ratio is zoo / transformers (issue 17's target: >= 1.0). ``agreement`` is the share of
sentences both give the same translation (padding changes the float sums a little, so a rare
near-tie can fall the other way).

Then the ONNX bundle (``zoo export``: the encoder graph and a one-step decoder graph with past keys and
values, :mod:`nlp.translation_export`) translates the same sentences greedily in :mod:`zoo.runtime`'s numpy
loop, same batches, against eager ``predict`` (issue 17's target: >= 1.3x), with its agreement.

    python -m benchmarks.translation_throughput --model DIR [--sentences 256] [--rounds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.load_overhead import write, zoo_env

BATCH = 32
MAX_NEW_TOKENS = 128


def transformers_translate(net, tokenizer, sentences: list[str], num_beams: int) -> list[str]:
    """Batches in order, padded, through ``generate``: the plain transformers way."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(sentences), BATCH):
            inputs = tokenizer(sentences[start:start + BATCH], padding=True, return_tensors="pt")
            ids = net.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                               num_beams=num_beams, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            out += [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def onnx_vs_eager(model, sentences: list[str], rounds: int) -> dict:
    """Greedy sentences/s of the exported bundle in zoo.runtime vs eager ``predict``, alternating rounds."""
    import tempfile
    from pathlib import Path

    from zoo.export import export
    from zoo.runtime import load_bundle

    with tempfile.TemporaryDirectory() as tmp:
        runtime = load_bundle(export(model, Path(tmp) / "bundle"))
        timings = {"onnxruntime": [], "eager": []}
        for _ in range(rounds):
            start = time.perf_counter()
            exported = runtime.translate(sentences, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)
            timings["onnxruntime"].append(time.perf_counter() - start)
            start = time.perf_counter()
            eager = model.predict(sentences, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)
            timings["eager"].append(time.perf_counter() - start)
    rate = {name: len(sentences) / statistics.median(seconds) for name, seconds in timings.items()}
    return {"sentences_per_s": {name: round(value, 2) for name, value in rate.items()},
            "onnxruntime_vs_eager": round(rate["onnxruntime"] / rate["eager"], 3),
            "agreement": round(sum(a == b for a, b in zip(exported, eager)) / len(sentences), 4),
            "rounds_s": {name: [round(s, 3) for s in seconds] for name, seconds in timings.items()}}


def main() -> None:
    import torch
    from transformers import PreTrainedTokenizerFast

    import zoo
    from nlp.bible import bible_en_es

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a Marian translation model: an id or a folder")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = zoo.load(args.model).eval()
    if model.card.architecture != "marian_translator":
        raise SystemExit(f"{args.model} is a {model.card.architecture}; expected a marian_translator")
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model.adapter.path(model.card.preprocessing["tokenizer"])),
                                        pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    sentences = bible_en_es().test.sources[:args.sentences]
    runs = {}
    for num_beams in (1, 4):
        timings = {"zoo": [], "transformers": []}
        for _ in range(args.rounds):
            start = time.perf_counter()
            ours = model.predict(sentences, num_beams=num_beams, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)
            timings["zoo"].append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs = transformers_translate(model.net, tokenizer, sentences, num_beams)
            timings["transformers"].append(time.perf_counter() - start)
        rate = {name: len(sentences) / statistics.median(seconds) for name, seconds in timings.items()}
        runs["greedy" if num_beams == 1 else f"beam{num_beams}"] = {
            "sentences_per_s": {name: round(value, 2) for name, value in rate.items()},
            "zoo_vs_transformers": round(rate["zoo"] / rate["transformers"], 3),
            "agreement": round(sum(a == b for a, b in zip(ours, theirs)) / len(sentences), 4),
            "rounds_s": {name: [round(s, 3) for s in seconds] for name, seconds in timings.items()},
        }
    runs["onnxruntime_greedy"] = onnx_vs_eager(model, sentences, args.rounds)
    write({"benchmark": "translation_throughput", "model": args.model, "sentences": len(sentences),
           "batch_size": BATCH, "max_new_tokens": MAX_NEW_TOKENS, "threads": args.threads, "runs": runs,
           "target": {"zoo_vs_transformers": ">= 1.0", "onnxruntime_vs_eager": ">= 1.3"},
           "command": f"python -m benchmarks.translation_throughput --model {args.model} --sentences {args.sentences}",
           "env": zoo_env()})


if __name__ == "__main__":
    main()
