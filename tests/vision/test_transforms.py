import numpy as np
import pytest
import torch
from PIL import Image

from vision.transforms import ImageTransform
from zoo.errors import InputError

DIGITS = ImageTransform(size=(8, 8), channels=1, mean=(0.5,), std=(0.5,), array_range=(0, 16))


def test_array_and_pil_inputs_map_to_the_same_normalised_tensor():
    array = np.zeros((8, 8)); array[2:6, 3] = 16
    pil = Image.fromarray((array / 16 * 255).astype(np.uint8))
    from_array, from_pil = DIGITS(array), DIGITS(pil)
    assert from_array.shape == (1, 8, 8) and from_array.dtype == torch.float32
    assert torch.allclose(from_array, from_pil, atol=1e-6)
    assert from_array.min() == -1 and from_array.max() == 1


def test_pil_images_of_any_size_and_mode_are_resized():
    out = DIGITS(Image.new("RGB", (64, 48), "white"))
    assert out.shape == (1, 8, 8) and torch.allclose(out, torch.ones(1, 8, 8))


def test_preprocessing_round_trips_through_the_card_dict():
    assert ImageTransform.from_preprocessing(DIGITS.to_preprocessing()) == DIGITS


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 5)), r"8×8 array .* got an array of shape \(3, 5\)"),
        (np.zeros((3, 8, 8)), r"shape \(3, 8, 8\)"),
        (np.full((8, 8), 255.0), r"values in \[0, 16\], got values in \[255, 255\]"),
        (np.array([["a"] * 8] * 8), "dtype <U1"),
        (np.full((8, 8), np.nan), "NaN"),
        ("not an image", "got str"),
    ],
)
def test_wrong_inputs_raise_input_error_saying_what_was_expected(bad, message):
    with pytest.raises(InputError, match=message):
        DIGITS(bad)


def test_rgb_transform_accepts_hwc_and_chw():
    rgb = ImageTransform(size=(4, 4), channels=3)
    hwc = np.random.default_rng(0).integers(0, 255, (4, 4, 3)).astype(np.uint8)
    assert torch.equal(rgb(hwc), rgb(hwc.transpose(2, 0, 1)))
