"""DigitsCNN: a small convolutional classifier for 8×8 grey-level digits.

Three 3×3 conv blocks (the second pools to 4×4), global average pooling, a
linear head. Sized for scikit-learn's digits: ~25k parameters, ~100 KB.
"""
from __future__ import annotations

from torch import nn


def _conv_block(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    """Conv → conv → pool → conv → global pool → dropout → linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64), drop_rate: float = 0.2):
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            _conv_block(in_chans, c1),
            _conv_block(c1, c2),
            nn.MaxPool2d(2),
            _conv_block(c2, c3),
        )
        self.num_features = c3
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c3, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one (timm's convention)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x):
        x = self.pool(x).flatten(1)
        return self.fc(self.head_drop(x))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def digits_cnn(num_classes: int = 10, **kwargs) -> DigitsCNN:
    """The architecture behind ``vision/digits_cnn.*``."""
    if "widths" in kwargs:
        kwargs["widths"] = tuple(kwargs["widths"])
    return DigitsCNN(num_classes=num_classes, **kwargs)
