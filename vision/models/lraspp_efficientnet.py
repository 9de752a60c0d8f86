"""LR-ASPP (MobileNetV3's light segmentation decoder, torchvision's ``LRASPPHead``) on EfficientNet-Lite0.

It meets the ``semantic-segmentation`` contract (:mod:`vision.segmentation`): ``[B, 3, H, W]``
normalised pictures in, class logits ``[B, C, H, W]`` at the input's size out. The decoder
joins a high-resolution map (stride 8, 40 channels) with the attention-weighted deepest one
(stride 32, 320 channels). The backbone's ImageNet weights are copied in by the
``semantic-segmentation`` recipe.
"""
from __future__ import annotations

import torch
from torch import nn

LOW, HIGH = 2, 4  # EfficientNet-Lite0 feature indices: stride 8 (40 channels), stride 32 (320 channels)


class LRASPPEfficientNet(nn.Module):
    """EfficientNet-Lite0 features + ``LRASPPHead``, logits bilinearly scaled to the input's size."""

    def __init__(self, num_classes: int, inter_channels: int = 128):
        from torchvision.models.segmentation.lraspp import LRASPPHead

        from vision.models.efficientnet import efficientnet_lite0_features

        super().__init__()
        self.backbone = efficientnet_lite0_features((LOW, HIGH))
        low_channels, high_channels = self.backbone.feature_info.channels()
        self.head = LRASPPHead(low_channels, high_channels, num_classes, inter_channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(images)
        logits = self.head({"low": low, "high": high})
        return nn.functional.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def lraspp_efficientnet_lite0(num_classes: int, inter_channels: int = 128) -> LRASPPEfficientNet:
    """The segmenter for ``num_classes`` classes (background included)."""
    return LRASPPEfficientNet(num_classes, inter_channels)
