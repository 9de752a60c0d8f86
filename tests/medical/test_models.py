"""The 3-D U-Net, the 1-channel timm classifier, and sliding-window inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medical.inference import gaussian_importance, sliding_window, window_starts
from medical.models.classifier2d import classifier2d
from medical.models.unet3d import unet3d


def test_unet3d_shapes_head_reset_and_tracing():
    torch.manual_seed(0)
    net = unet3d(num_classes=4, widths=(4, 8, 16)).eval()
    x = torch.randn(2, 1, 16, 24, 32)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (2, 4, 16, 24, 32)
        traced = torch.jit.trace(net, x[:1], check_trace=False)  # pure tensor ops: the trace runs other shapes
        torch.testing.assert_close(traced(x), y)
    net.reset_classifier(2)
    assert net(x).shape[1] == 2 and net.divisor == 4


def test_timm_backbone_gets_a_grey_stem_summed_from_rgb(tmp_path):
    """timm's in_chans=1 adapts pretrained RGB stem weights by summing them (adapt_input_conv)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    rgb = classifier2d("resnet10t", num_classes=5, in_chans=3)
    save_file(rgb.state_dict(), tmp_path / "rgb.safetensors")
    grey = classifier2d("resnet10t", num_classes=5, in_chans=1, pretrained=True,
                        pretrained_cfg_overlay={"file": str(tmp_path / "rgb.safetensors")})
    stem_rgb, stem_grey = rgb.conv1[0].weight, grey.conv1[0].weight
    assert stem_grey.shape[1] == 1
    torch.testing.assert_close(stem_grey, stem_rgb.sum(dim=1, keepdim=True))
    image = torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # a grey image through the grey stem = its RGB copy through the RGB one (the head is new)
        torch.testing.assert_close(grey.eval().forward_features(image),
                                   rgb.eval().forward_features(image.expand(1, 3, 32, 32)), rtol=1e-4, atol=1e-4)


class Pointwise(torch.nn.Module):
    """A 1×1×1 convolution: its output at a voxel depends on that voxel only, so tiling cannot change it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 3, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("shape", [(20, 30, 41), (5, 9, 7)])  # bigger than the patch, and smaller (padded)
def test_sliding_window_blends_back_to_the_whole_image_result(shape):
    torch.manual_seed(0)
    net = Pointwise().eval()
    image = torch.randn(1, *shape)
    probabilities = sliding_window(net, image, (8, 16, 16), overlap=0.5, batch_size=3)
    assert probabilities.shape == (3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(probabilities, net(image[None])[0].softmax(0), rtol=1e-5, atol=1e-5)


def test_windows_cover_the_axis_with_the_requested_overlap():
    starts = window_starts(100, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert max(np.diff(starts)) <= 16
    assert window_starts(20, 32, 0.5) == [0]
    weights = gaussian_importance((8, 8, 8))
    assert weights.max() == 1.0 and weights[0, 0, 0] < weights[4, 4, 4] and weights.min() > 0
