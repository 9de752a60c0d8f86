"""How much mIoU a segmenter's output stride alone costs on the fashion composite.

The ground-truth masks of the test split, one-hot, averaged into stride-``s`` cells and scaled
back bilinearly (what a decoder with perfect class probabilities at that stride predicts),
scored against themselves. The result is the best mIoU a decoder whose finest logits are at
stride ``s`` can reach; it is why ``lraspp_efficientnet_lite0`` refines its stride-8 logits at
strides 4 and 2 (``fine_channels``).

    python -m benchmarks.segmentation_stride_bound [--strides 8 4 2]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "segmentation_stride_bound.json"


def stride_bound(masks, num_classes: int, stride: int) -> dict[str, float]:
    """mIoU and pixel accuracy of ``masks`` ``[N, H, W]`` after a round trip through stride-``stride`` cells."""
    import torch
    from torch.nn import functional as F

    from zoo.metrics import confusion_scores, segmentation_confusion

    onehot = F.one_hot(masks, num_classes).permute(0, 3, 1, 2).float()
    coarse = F.avg_pool2d(onehot, stride)
    back = F.interpolate(coarse, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return confusion_scores(segmentation_confusion(back.argmax(1), masks, num_classes))


def main() -> None:
    import numpy as np
    import torch

    from vision.segmentation_data import load_segmentation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 4, 2])
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    splits = load_segmentation("vision/fashion_composite")
    masks = torch.stack([torch.as_tensor(np.asarray(splits.test.raw(i)[1])).long() for i in range(len(splits.test))])
    result = {"benchmark": "segmentation_stride_bound", "dataset": "vision/fashion_composite", "split": "test",
              "images": len(masks), "image_size": list(masks.shape[-2:]),
              "strides": {str(s): stride_bound(masks, len(splits.classes), s) for s in args.strides},
              "command": "python -m benchmarks.segmentation_stride_bound"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["strides"], indent=2))


if __name__ == "__main__":
    main()
