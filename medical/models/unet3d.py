"""UNet3D: a compact 3-D U-Net for volumetric segmentation.

Encoder: per level two 3×3×3 convolutions with instance norm and leaky ReLU; a
stride-2 convolution goes down a level. Decoder: a stride-2 transposed
convolution up, concatenation with the skip, two convolutions. A 1×1×1
convolution gives per-class logits. The forward pass is pure tensor ops with no
shape-dependent Python, so it traces and exports (ONNX); inputs must be
divisible by ``2 ** (len(widths) - 1)`` on every axis (sliding-window patches are).
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """Two (conv 3×3×3 → instance norm → leaky ReLU) layers."""

    def __init__(self, in_chs: int, out_chs: int):
        layers = []
        for chs in (in_chs, out_chs):
            layers += [nn.Conv3d(chs, out_chs, 3, padding=1, bias=False), nn.InstanceNorm3d(out_chs, affine=True),
                       nn.LeakyReLU(0.01, inplace=True)]
        super().__init__(*layers)


class UNet3D(nn.Module):
    """``[N, in_chans, D, H, W]`` → ``[N, num_classes, D, H, W]`` logits."""

    def __init__(self, num_classes: int = 2, in_chans: int = 1, widths: tuple[int, ...] = (8, 16, 32, 64)):
        super().__init__()
        self.num_classes = num_classes
        self.widths = tuple(widths)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        chs = in_chans
        for i, width in enumerate(self.widths):
            self.encoders.append(ConvBlock(chs, width))
            if i < len(self.widths) - 1:
                self.downs.append(nn.Conv3d(width, width, 2, stride=2))
            chs = width
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(self.widths[:-1]):
            self.ups.append(nn.ConvTranspose3d(chs, width, 2, stride=2))
            self.decoders.append(ConvBlock(2 * width, width))
            chs = width
        self.head = nn.Conv3d(chs, num_classes, 1)

    @property
    def divisor(self) -> int:
        """Every spatial input size must be a multiple of this."""
        return 2 ** (len(self.widths) - 1)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh 1×1×1 head for ``num_classes`` classes (fine-tuning on other labels)."""
        self.num_classes = num_classes
        self.head = nn.Conv3d(self.head.in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            if i < len(self.downs):
                skips.append(x)
                x = self.downs[i](x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def unet3d(num_classes: int = 2, in_chans: int = 1, widths=(8, 16, 32, 64)) -> UNet3D:
    """The architecture behind ``medical/unet3d.*``."""
    return UNet3D(num_classes=num_classes, in_chans=in_chans, widths=tuple(widths))
