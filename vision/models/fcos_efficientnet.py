"""FCOS (torchvision's anchor-free detector) on EfficientNet-Lite0 features with an FPN.

The network follows torchvision's detection API, so it meets the ``object-detection``
contract (:mod:`vision.detection`): eval mode takes a list of ``[3, H, W]`` pictures in
[0, 1] and returns ``{"boxes", "scores", "labels"}`` per picture in its pixels; train
mode takes ``(images, targets)`` and returns FCOS's loss dict (classification, box
regression, centerness). Resizing (``min_size``/``max_size``) and the backbone's
normalisation happen inside, in torchvision's ``GeneralizedRCNNTransform``.

The backbone's ImageNet weights (``vision/efficientnet_lite0.in1k``) are copied in by the
``object-detection`` recipe, not here: a saved detector carries all its own weights.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# Strides 8, 16, 32 of EfficientNet-Lite0 (40, 112, 320 channels); the FPN adds P6 and P7.
FEATURE_INDICES = (2, 3, 4)


class FeaturePyramid(nn.Module):
    """Backbone feature maps through torchvision's ``FeaturePyramidNetwork`` (+ P6/P7), as an ordered dict:
    what torchvision's detectors take as a backbone (they read ``out_channels``)."""

    def __init__(self, features: nn.Module, out_channels: int):
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

        super().__init__()
        self.body = features
        self.fpn = FeaturePyramidNetwork(features.feature_info.channels(), out_channels,
                                         extra_blocks=LastLevelP6P7(out_channels, out_channels))
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(OrderedDict((str(i), x) for i, x in enumerate(self.body(images))))


def fcos_efficientnet_lite0(num_classes: int, image_size: int = 320, fpn_channels: int = 64,
                            score_thresh: float = 0.2, nms_thresh: float = 0.6, detections_per_img: int = 100,
                            max_size: int | None = None):
    """FCOS with an FPN on EfficientNet-Lite0. ``num_classes`` counts the background slot 0 (torchvision's
    convention; labels of boxes start at 1). Pictures are resized so the shorter side is ``image_size``
    (the longer at most ``max_size``, default ``image_size``)."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    from vision.models.efficientnet import LITE_MEAN, LITE_STD, efficientnet_lite0_features

    backbone = FeaturePyramid(efficientnet_lite0_features(FEATURE_INDICES), fpn_channels)
    # One anchor a location, its size the level's stride times 4 (FCOS uses it only as the location's centre
    # and scale reference): strides 8..128.
    anchors = AnchorGenerator(sizes=tuple((8 * 2**level * 4,) for level in range(5)), aspect_ratios=((1.0,),) * 5)
    return FCOS(backbone, num_classes, min_size=image_size, max_size=max_size or image_size,
                image_mean=LITE_MEAN, image_std=LITE_STD, anchor_generator=anchors, score_thresh=score_thresh,
                nms_thresh=nms_thresh, detections_per_img=detections_per_img)
