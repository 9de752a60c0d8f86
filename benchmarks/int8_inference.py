"""int8 side by side: batch-1 CPU latency of eager PyTorch, fp32 ONNX Runtime and int8 ONNX Runtime for MiniLM.

``nlp/text_encoder.all_minilm_l6_v2`` is exported once to fp32 ONNX and dynamically quantized to int8
(:func:`backends.quantize.quantize_dynamic_int8`, what ``zoo export --quantize int8`` writes). The three
runners are timed in alternating rounds on one sentence of 64 tokens, so load drift hits all alike; the
latency is the median over rounds of each round's median. This runs twice: torch and ONNX Runtime on one
intra-op thread, then on their defaults. Ratios are eager latency / runner latency (target: int8 >= 3.0x
eager). Quality, beside it: the mean (and smallest) cosine similarity of the fp32 and int8 embeddings to
eager's on the first ``--texts`` test tweets of ``nlp/tweets-sentiment``.

    python -m benchmarks.int8_inference [--rounds 5] [--iters 30] [--texts 512]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.backend_inference import _tokens, call, median_ms
from benchmarks.load_overhead import write, zoo_env

MODEL_ID = "nlp/text_encoder.all_minilm_l6_v2"
RUNNERS = ("torch", "onnxruntime", "onnxruntime-int8")


def graphs(model, folder: Path) -> dict[str, Path]:
    """The fp32 ONNX graph and its int8 version."""
    from backends.onnx_backend import export_onnx
    from backends.quantize import quantize_dynamic_int8

    fp32 = export_onnx(model.net, model.adapter.example_inputs()[0], folder / "fp32.onnx")
    quantize_dynamic_int8(fp32, folder / "int8.onnx", reduce_range=model.adapter.int8_reduce_range)  # as zoo export
    return {"onnxruntime": fp32, "onnxruntime-int8": folder / "int8.onnx"}


def timed(model, paths: dict[str, Path], threads: int | None, rounds: int, iters: int) -> dict:
    """Latency of the three runners on one 64-token sentence, ``threads`` intra-op threads (None: defaults)."""
    return side_by_side(call(model.net), paths, _tokens(model, 64), threads, rounds, iters)


def side_by_side(eager, paths: dict[str, Path], inputs, threads: int | None, rounds: int, iters: int) -> dict:
    """Latency of ``eager`` and of the fp32 and int8 ONNX graphs ``paths`` on ``inputs``, timed in alternating
    rounds with ``threads`` intra-op threads (None: defaults); ratios to eager and int8's to fp32."""
    from backends.onnx_backend import OnnxRunner

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    runners = {"torch": eager, **{name: OnnxRunner(path, threads=threads) for name, path in paths.items()}}
    samples = {name: [] for name in RUNNERS}
    with torch.inference_mode():
        for name in RUNNERS:  # warm-up
            median_ms(runners[name], inputs, 3)
        for _ in range(rounds):
            for name in RUNNERS:
                samples[name].append(median_ms(runners[name], inputs, iters))
    torch.set_num_threads(default_threads)
    latency = {name: statistics.median(v) for name, v in samples.items()}
    return {"threads": threads or default_threads, "latency_ms_batch1": latency,
            "speedup_vs_eager": {n: latency["torch"] / latency[n] for n in RUNNERS[1:]},
            "int8_vs_fp32_onnxruntime": latency["onnxruntime"] / latency["onnxruntime-int8"], "rounds_ms": samples}


def cosines(model, paths: dict[str, Path], count: int) -> dict:
    """Mean and smallest cosine similarity of each ONNX runner's embeddings to eager's on real test tweets."""
    from backends.onnx_backend import OnnxRunner
    from nlp.datasets import load_splits
    from zoo.model import RunnerNet

    texts = load_splits("nlp/tweets-sentiment").test.texts[:count]
    encoded = model.adapter.encode(texts)
    with torch.inference_mode():
        eager = model.adapter.run(model.net, encoded, device=torch.device("cpu")).double()
        found = {}
        for name, path in paths.items():
            got = model.adapter.run(RunnerNet(OnnxRunner(path), torch.device("cpu"), 0), encoded,
                                    device=torch.device("cpu")).double()
            rows = torch.nn.functional.cosine_similarity(eager, got, dim=1).numpy()
            found[name] = {"mean": float(rows.mean()), "min": float(rows.min()), "p01": float(np.quantile(rows, 0.01))}
    return {"data": "nlp/tweets-sentiment test", "texts": len(texts), "reference": "eager PyTorch fp32",
            "cosine": found}


def main() -> None:
    import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--texts", type=int, default=512, help="test tweets the cosine is measured on")
    args = parser.parse_args()
    model = zoo.load(MODEL_ID, device="cpu").eval()
    with tempfile.TemporaryDirectory(prefix="zoo-int8-bench-") as folder:
        paths = graphs(model, Path(folder))
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        runs = {}
        for label, threads in (("single_thread", 1), ("default_threads", None)):
            runs[label] = timed(model, paths, threads, args.rounds, args.iters)
            print(label, {n: f"{v:.2f} ms" for n, v in runs[label]["latency_ms_batch1"].items()},
                  {n: f"{v:.2f}x" for n, v in runs[label]["speedup_vs_eager"].items()}, flush=True)
        quality = cosines(model, paths, args.texts)
    print("cosine to eager", quality["cosine"], flush=True)
    write({
        "benchmark": "int8_inference",
        "model": f"{MODEL_ID} (one sentence of 64 tokens, batch 1)",
        "rounds": args.rounds,
        "iters_per_round": args.iters,
        "runs": runs,
        "quality": quality,
        "onnx_bytes": sizes,
        "targets": {"onnxruntime-int8 speedup_vs_eager": ">= 3.0", "cosine mean": ">= 0.99"},
        "command": "python -m benchmarks.int8_inference",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
