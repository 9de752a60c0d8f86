"""Training augmentations work on every kind of image the datasets produce."""
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from vision.recipes import _train_transform
from vision.transforms import ImageTransform

DIGITS = ImageTransform(size=(8, 8), channels=1, mean=(0.5,), std=(0.5,), array_range=(0.0, 16.0))
PHOTOS = ImageTransform(size=(32, 32), channels=3, crop_pct=0.875)


@pytest.mark.parametrize("augment", ["trivial", "affine"])
@pytest.mark.parametrize("transform, image", [
    (DIGITS, np.random.default_rng(0).uniform(0, 16, (8, 8))),             # float array (sklearn digits)
    (PHOTOS, Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40), dtype=np.uint8))),  # L
    (PHOTOS, Image.fromarray(np.random.default_rng(2).uniform(0, 255, (30, 40)).astype(np.float32))),  # F (0-255)
    (PHOTOS, Image.fromarray(np.random.default_rng(3).integers(0, 65535, (30, 40), dtype=np.uint16))),  # I;16
    (PHOTOS, Image.new("RGBA", (40, 30), (10, 200, 30, 128))),
    (PHOTOS, np.random.default_rng(4).integers(0, 256, (30, 40, 3), dtype=np.uint8)),  # a photo array
])
def test_augmentations_take_every_mode_and_keep_the_model_input(augment, transform, image):
    torch.manual_seed(0)
    plain = transform(image)
    outputs = [_train_transform(augment, transform)(image) for _ in range(12)]
    lo, hi = [(v - m) / s for v, m, s in zip((0.0, 1.0), transform.mean * 2, transform.std * 2)]
    for out in outputs:
        assert out.shape == plain.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert out.min() >= min(lo, hi) - 1e-5 and out.max() <= max(lo, hi) + 1e-5
    assert any(not torch.allclose(out, plain, atol=1e-2) for out in outputs)  # it does augment


def test_finetune_with_the_default_augmentation_on_grey_float_images(tmp_path):
    """`zoo finetune vision/digits_cnn.sklearn --data vision/digits` crashed in TrivialAugment's Sharpness."""
    script = shutil.which("zoo")
    result = subprocess.run([script, "finetune", "vision/digits_cnn.sklearn", "--data", "vision/digits",
                             "--epochs", "1", "--out", str(tmp_path / "run"), "--set", "augment=trivial"],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "card.json").is_file()
