"""Classifier2D: any timm backbone on 1-channel (grey) images.

timm's ``in_chans=1`` builds the stem for one channel; with pretrained weights it
sums the RGB filters of the first convolution into one (its ``adapt_input_conv``),
so an ImageNet backbone responds to grey images as it did to their RGB copies.
"""
from __future__ import annotations

from torch import nn


def classifier2d(backbone: str = "resnet18", num_classes: int = 2, in_chans: int = 1, pretrained: bool = False,
                 **kwargs) -> nn.Module:
    """A timm model with ``in_chans`` input channels and a ``num_classes`` head.

    ``pretrained=True`` loads the backbone's timm weights (through the Hugging Face
    Hub cache) and adapts the stem; saved zoo models are rebuilt with
    ``pretrained=False`` and their own weights loaded over it.
    """
    import timm

    return timm.create_model(backbone, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
