"""How close a fine-tuning step comes to this machine's fp32 matrix-multiply peak (issue 20, section 2).

For each fine-tune, the step the recipes run (forward, cross-entropy, backward, gradient clipping at
1.0, fused AdamW, ``optimizer.zero_grad``) on fixed batches:

- ``minilm``: ``nlp/text_encoder.all_minilm_l6_v2`` + a linear head on real tweets of
  ``nlp/tweets-sentiment`` (batches of ``--batch-size`` texts, each padded to its longest, as the
  text-classification recipe's collate does; texts in length buckets, as its sampler groups them);
- ``efficientnet``: ``vision/efficientnet_lite0.in1k`` with a 10-class head on 32×32 inputs, batch 96
  (the Fashion-MNIST transfer fine-tune of ``benchmarks.int8_cnn_inference``; the pixel values do
  not change the work, so the batches are random); ``efficientnet_channels_last`` the same step with
  the weights in channels-last memory (``TrainConfig.channels_last``), where the depthwise
  convolutions run faster.

The model FLOPs of each batch's forward and backward are counted by ``torch.utils.flop_counter.FlopCounterMode``
(matrix products and convolutions; the optimizer's element-wise work is not counted, as in any MFU), with
one correction: torch's formula for a convolution's backward ignores ``groups``, so it counts a depthwise
convolution's backward ``groups`` times over (63 GFLOP instead of 4.5 for this EfficientNet step);
:func:`conv_backward_flops` counts each of grad-input and grad-weight as one forward.
Achieved FLOP/s = those FLOPs / the measured step time. The peak is the best FLOP/s of a large
``torch.mm`` (1024, 2048 and 4096 square, fp32) in the same run and the same threads. MFU = achieved /
peak (target for MiniLM: >= 0.5). Where the rest goes: ``torch.profiler`` over a few steps, self CPU time
by operator, split into matrix products and convolutions (``gemm``) and the rest.

    python -m benchmarks.train_step_mfu [--steps 20] [--batch-size 32] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.load_overhead import write, zoo_env

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution", "aten::_convolution",
            "aten::mkldnn_convolution", "aten::convolution_backward", "aten::thnn_conv2d", "aten::_slow_conv2d_forward",
            "aten::_slow_conv2d_backward")


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: one forward's (whose weight shape already holds in/groups
    channels) for each gradient asked for (input, weight)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def count_flops(net, inputs, labels) -> int:
    """Model FLOPs of one forward and backward (see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        torch.nn.functional.cross_entropy(_forward(net, inputs), labels).backward()
    return counter.get_total_flops()


def gemm_peak(threads: int) -> dict:
    """The best fp32 ``torch.mm`` FLOP/s over three sizes (median of 5 timed products each)."""
    rates = {}
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        seconds = []
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b)
            seconds.append(time.perf_counter() - start)
        rates[str(n)] = 2 * n**3 / statistics.median(seconds)
    return {"threads": threads, "flops_per_s": max(rates.values()),
            "by_size_gflops": {n: round(r / 1e9, 2) for n, r in rates.items()}}


def minilm_batches(batch_size: int, steps: int):
    """(model, [(inputs, labels)]): MiniLM + head and real tweet batches in length buckets."""
    import numpy as np

    import zoo
    from nlp.datasets import load_splits
    from nlp.recipes import LengthBucketSampler

    splits = load_splits("nlp/tweets-sentiment")
    torch.manual_seed(0)
    model = zoo.load("nlp/text_encoder.all_minilm_l6_v2", num_classes=len(splits.classes), device="cpu")
    keep = np.sort(np.random.default_rng(0).permutation(len(splits.train))[:batch_size * steps * 4])
    train = splits.train.subset(keep)
    encoded = model.adapter.encode(train.inputs())
    order = list(LengthBucketSampler(len(encoded), batch_size, 0, lengths=[len(e) for e in encoded]))[:steps]
    batches = [model.adapter.collate([(encoded[i], int(train.labels[i])) for i in batch]) for batch in order]
    return model.net, batches


def efficientnet_batches(batch_size: int, steps: int):
    """(model, [(inputs, labels)]): EfficientNet-Lite0 with a 10-class head and 32×32 batches."""
    import zoo

    torch.manual_seed(0)
    model = zoo.load("vision/efficientnet_lite0.in1k", num_classes=10, device="cpu")
    batches = [(torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))) for _ in range(steps)]
    return model.net, batches


def _forward(net, inputs):
    return net(**inputs) if isinstance(inputs, dict) else net(inputs)


def train_step(net, optimizer, inputs, labels) -> None:
    """One step as the Trainer takes it in fp32."""
    loss = torch.nn.functional.cross_entropy(_forward(net, inputs), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(net, batches, peak: float, channels_last: bool = False, profile_steps: int = 5) -> dict:
    """FLOPs of each batch, the timed steps, MFU, and the profile of where a step's time goes."""
    from zoo.train import TrainConfig, default_optimizer

    net.train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = default_optimizer(net, TrainConfig(lr=5e-5, weight_decay=0.01))
    flops = []
    for inputs, labels in batches:
        flops.append(count_flops(net, inputs, labels))
        optimizer.zero_grad(set_to_none=True)
    for inputs, labels in batches[:3]:  # warm-up: allocations, the optimizer's state
        train_step(net, optimizer, inputs, labels)
    start = time.perf_counter()
    for inputs, labels in batches:
        train_step(net, optimizer, inputs, labels)
    seconds = time.perf_counter() - start
    achieved = sum(flops) / seconds
    return {"steps": len(batches), "seconds_per_step": round(seconds / len(batches), 4),
            "gflops_per_step": round(sum(flops) / len(flops) / 1e9, 2), "achieved_gflops_per_s": round(achieved / 1e9, 2),
            "mfu": round(achieved / peak, 4), "profile": profile(net, optimizer, batches[:profile_steps])}


def profile(net, optimizer, batches) -> dict:
    """Self CPU time by operator over ``batches`` steps: the share of matrix products and convolutions, the top rest."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for inputs, labels in batches:
            train_step(net, optimizer, inputs, labels)
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in rows)
    gemm = sum(t for key, t in rows if key in GEMM_OPS)
    rest = sorted(((key, t) for key, t in rows if key not in GEMM_OPS), key=lambda row: -row[1])[:12]
    return {"gemm_share": round(gemm / total, 4), "top_other_ops_share": {key: round(t / total, 4) for key, t in rest}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32, help="MiniLM's texts a batch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    peak = gemm_peak(args.threads)
    print(f"fp32 GEMM peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s {peak['by_size_gflops']}")
    results = {}
    for name, make, channels_last in (("minilm", lambda: minilm_batches(args.batch_size, args.steps), False),
                                      ("efficientnet", lambda: efficientnet_batches(96, args.steps), False),
                                      ("efficientnet_channels_last", lambda: efficientnet_batches(96, args.steps), True)):
        net, batches = make()
        results[name] = measure(net, batches, peak["flops_per_s"], channels_last)
        print(name, {k: v for k, v in results[name].items() if k != "profile"})
    write({"benchmark": "train_step_mfu", "gemm_peak": {**peak, "gflops_per_s": round(peak.pop("flops_per_s") / 1e9, 2)},
           "runs": results, "target": {"minilm_mfu": ">= 0.5"},
           "command": "python -m benchmarks.train_step_mfu", "env": zoo_env()})


if __name__ == "__main__":
    main()
