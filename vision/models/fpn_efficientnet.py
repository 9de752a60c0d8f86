"""Semantic FPN (Kirillov et al., 2019, "Panoptic Feature Pyramid Networks") on EfficientNet-Lite0.

It meets the ``semantic-segmentation`` contract (:mod:`vision.segmentation`): ``[B, 3, H, W]``
normalised pictures in, class logits ``[B, C, H, W]`` at the input's size out. torchvision's
``FeaturePyramidNetwork`` joins the stride-8, 16 and 32 maps (40, 112, 320 channels); each level
goes through 3×3 conv-BN-ReLU blocks, upsampled by 2 after each until stride 8, and the levels are
summed there and classified. The stride-4 and stride-2 ``FineRefinement`` steps of the LR-ASPP
segmenter then sharpen the logits. Why an FPN rather than LR-ASPP: LR-ASPP classifies each stride-8
pixel with a 1×1 layer on shallow features plus a gated stride-32 term, so pixels of one item
often disagree on its class; the FPN's decoder sees every level through 3×3 convolutions, as the
FCOS detector's head does. The backbone's ImageNet weights are copied in by the
``semantic-segmentation`` recipe.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vision.models.lraspp_efficientnet import FineRefinement

# EfficientNet-Lite0 feature indices: strides 2 (16 channels) and 4 (24) for the refinements,
# 8 (40), 16 (112) and 32 (320) for the pyramid.
FINE, PYRAMID = (1, 0), (2, 3, 4)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UpsampleToStride8(nn.Module):
    """One pyramid level brought to stride 8: a conv block, then (conv block + 2× upsampling) per octave."""

    def __init__(self, in_channels: int, channels: int, octaves: int):
        super().__init__()
        self.blocks = nn.ModuleList(conv_bn_relu(in_channels if i == 0 else channels, channels)
                                    for i in range(max(octaves, 1)))
        self.octaves = octaves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
            if self.octaves:
                x = nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class SemanticFPNEfficientNet(nn.Module):
    """EfficientNet-Lite0 features + FPN + per-level upsampling branches summed at stride 8
    (+ ``FineRefinement`` at strides 4 and 2 when ``fine_channels``), logits at the input's size."""

    def __init__(self, num_classes: int, fpn_channels: int = 64, decoder_channels: int = 64,
                 fine_channels: int = 32):
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork

        from vision.models.efficientnet import efficientnet_lite0_features

        super().__init__()
        self.fine = FINE if fine_channels else ()
        self.backbone = efficientnet_lite0_features(tuple(sorted(self.fine)) + PYRAMID)
        channels = dict(zip(self.backbone.feature_info.out_indices, self.backbone.feature_info.channels()))
        self.fpn = FeaturePyramidNetwork([channels[index] for index in PYRAMID], fpn_channels)
        # PYRAMID's strides are 8, 16, 32: zero, one and two octaves above stride 8
        self.branches = nn.ModuleList(UpsampleToStride8(fpn_channels, decoder_channels, octaves)
                                      for octaves in range(len(PYRAMID)))
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        self.refine = nn.ModuleList(FineRefinement(num_classes, channels[index], fine_channels) for index in self.fine)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.backbone.feature_info.out_indices, self.backbone(images)))
        pyramid = self.fpn(OrderedDict((str(index), features[index]) for index in PYRAMID))
        stride8 = sum(branch(level) for branch, level in zip(self.branches, pyramid.values()))
        logits = self.classifier(stride8)
        for index, refine in zip(self.fine, self.refine):
            logits = refine(logits, features[index])
        return nn.functional.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def fpn_efficientnet_lite0(num_classes: int, fpn_channels: int = 64, decoder_channels: int = 64,
                           fine_channels: int = 32) -> SemanticFPNEfficientNet:
    """The segmenter for ``num_classes`` classes (background included); ``fine_channels`` = 0 leaves out the
    stride-4 and stride-2 refinements."""
    return SemanticFPNEfficientNet(num_classes, fpn_channels, decoder_channels, fine_channels)
