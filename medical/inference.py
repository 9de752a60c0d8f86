"""Sliding-window inference with overlapping patches blended by a Gaussian importance map (as nnU-Net does)."""
from __future__ import annotations

import itertools

import numpy as np
import torch


def gaussian_importance(patch_size, sigma_scale: float = 0.125) -> torch.Tensor:
    """A patch-sized weight map: a Gaussian centred on the patch, σ = ``sigma_scale`` × size per axis, max 1."""
    axes = []
    for size in patch_size:
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        axes.append(torch.exp(-0.5 * (coords / (sigma_scale * size)) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weights /= weights.max()
    return weights.clamp_min(1e-3)  # edges still count a little, so no voxel ends with weight 0


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Patch start offsets along one axis: evenly spread, stepping at most ``patch × (1 - overlap)``, last flush with the end."""
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1 - overlap)))
    count = int(np.ceil((size - patch) / step)) + 1
    return [int(round(i * (size - patch) / (count - 1))) for i in range(count)]


@torch.inference_mode()
def sliding_window(net: torch.nn.Module, image: torch.Tensor, patch_size, *, overlap: float = 0.5,
                   batch_size: int = 4, pad_value: float = 0.0, device: torch.device | str | None = None) -> torch.Tensor:
    """Softmax probabilities ``[classes, D, H, W]`` of ``net`` over a ``[channels, D, H, W]`` image.

    The image is padded up to the patch size where smaller; patches overlapping by
    ``overlap`` are run ``batch_size`` at a time and their probabilities averaged
    with Gaussian weights, so patch borders leave no seams. Memory: the output,
    one weight map and one batch of patches. Patches run on ``device`` (where ``net`` is;
    default: the image's device).
    """
    device = image.device if device is None else torch.device(device)
    patch_size = tuple(int(p) for p in patch_size)
    shape = image.shape[1:]
    padding = [max(0, p - s) for p, s in zip(patch_size, shape)]
    if any(padding):
        pads = []  # F.pad takes (before, after) pairs from the last axis back
        for amount in reversed(padding):
            pads += [amount // 2, amount - amount // 2]
        image = torch.nn.functional.pad(image, pads, value=pad_value)
    padded = image.shape[1:]
    starts = list(itertools.product(*(window_starts(s, p, overlap) for s, p in zip(padded, patch_size))))
    weights = gaussian_importance(patch_size).to(device)
    output = None
    total = torch.zeros(padded, dtype=torch.float32, device=device)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        batch = torch.stack([image[:, d:d + patch_size[0], h:h + patch_size[1], w:w + patch_size[2]] for d, h, w in chunk])
        probabilities = net(batch.to(device)).float().softmax(dim=1)
        if output is None:
            output = torch.zeros((probabilities.shape[1], *padded), dtype=torch.float32, device=device)
        for (d, h, w), patch in zip(chunk, probabilities):
            region = (slice(d, d + patch_size[0]), slice(h, h + patch_size[1]), slice(w, w + patch_size[2]))
            output[(slice(None), *region)] += patch * weights
            total[region] += weights
    output /= total
    crop = tuple(slice(p // 2, p // 2 + s) for p, s in zip(padding, shape))
    return output[(slice(None), *crop)]
