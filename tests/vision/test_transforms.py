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


# -- ImageNet-style preprocessing (crop_pct, interpolation) and awkward inputs ---------------------
HALF = (0.5, 0.5, 0.5)
IMAGENET = ImageTransform(size=(224, 224), mean=HALF, std=HALF, crop_pct=0.875, interpolation="bicubic")
SMALL = ImageTransform(size=(16, 16), crop_pct=0.875, interpolation="bilinear")  # mean 0, std 1: unit values


def photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(width * height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def test_crop_pct_matches_timms_eval_transform_on_any_aspect_ratio():
    timm_data = pytest.importorskip("timm.data")
    reference = timm_data.create_transform(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic",
                                           mean=HALF, std=HALF)
    for width, height in [(451, 300), (300, 451), (224, 224), (1000, 257), (50, 100)]:
        image = photo(width, height)
        out = IMAGENET(image)
        assert out.shape == (3, 224, 224)
        assert torch.equal(out, reference(image)), (width, height)


def test_imagenet_preprocessing_round_trips_and_old_cards_keep_their_defaults():
    assert ImageTransform.from_preprocessing(IMAGENET.to_preprocessing()) == IMAGENET
    old_card = {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5], "array_range": [0, 16]}
    assert ImageTransform.from_preprocessing(old_card) == DIGITS  # no crop, box filter, PIL's pixel limit
    with pytest.raises(InputError, match="interpolation must be one of"):
        ImageTransform(size=(8, 8), interpolation="cubic")
    with pytest.raises(InputError, match="crop_pct"):
        ImageTransform(size=(8, 8), crop_pct=1.5)


def test_uint8_hwc_arrays_of_any_size_are_pictures_for_crop_models():
    image = photo(451, 300)
    assert torch.equal(IMAGENET(np.asarray(image)), IMAGENET(image))
    exact = photo(224, 224)  # even at exactly 224×224 a picture is resized and cropped, like the PIL image
    assert torch.equal(IMAGENET(np.asarray(exact)), IMAGENET(exact))
    # float (or C×H×W) arrays are taken as already resized: they must have the size
    with pytest.raises(InputError, match=r"uint8 H×W×3 array of any size .* got an array of shape \(300, 451, 3\)"):
        IMAGENET(np.asarray(image, dtype=np.float32))


def test_grey_images_and_2d_arrays_are_replicated_into_three_channels():
    grey = photo(40, 30, "L")
    out = SMALL(grey)
    assert out.shape == (3, 16, 16) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert torch.equal(out, SMALL(grey.convert("RGB")))
    assert torch.equal(SMALL(np.asarray(grey)), out)  # a 2-D uint8 array is a grey picture
    fixed = ImageTransform(size=(4, 4), channels=3)  # no crop: 2-D arrays of the size are grey images
    array = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert torch.equal(fixed(array), torch.from_numpy(array / 255).expand(3, 4, 4))
    with pytest.raises(InputError, match=r"shape \(5, 4\)"):
        fixed(np.zeros((5, 4), dtype=np.float32))


def test_transparency_is_composited_over_white():
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)  # black, fully transparent...
    rgba[:, 8:] = (0, 0, 0, 255)  # ...except an opaque black right half
    rgba[:8, :8] = (255, 0, 0, 128)  # and a half-transparent red corner
    out = ImageTransform(size=(16, 16))(Image.fromarray(rgba, "RGBA"))
    assert torch.all(out[:, 8:, :8] == 1)  # transparent -> white, not the black underneath
    assert torch.all(out[:, :, 8:] == 0)
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=1 / 255)
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 9, 9, 9])
    palette.info["transparency"] = 0
    assert torch.all(ImageTransform(size=(16, 16))(palette) == 1)
    assert torch.all(ImageTransform(size=(16, 16), channels=1)(palette.convert("LA")) == 1)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_images_scale_by_65535_not_clipped_at_255(mode):
    values = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values) if mode == "I;16" else Image.fromarray(values.astype(np.int32))
    assert image.mode == mode
    out = ImageTransform(size=(2, 2), channels=1)(image)
    assert torch.allclose(out[0], torch.from_numpy(values / 65535).float(), atol=1e-6)
    rgb = ImageTransform(size=(2, 2))(image)
    assert rgb.shape == (3, 2, 2) and torch.equal(rgb[0], out[0]) and torch.equal(rgb[2], out[0])
    resized = SMALL(image.resize((40, 30), Image.Resampling.NEAREST))
    assert 0 <= resized.min() and resized.max() <= 1 and resized.max() > 0.9  # bright stays bright


def test_32_bit_values_beyond_16_bits_are_rejected():
    with pytest.raises(InputError, match=r"I image with values in \[0, 65535\], got values in \[0, 70000\]"):
        DIGITS(Image.fromarray(np.array([[0, 70000]], dtype=np.int32)))


def test_huge_images_are_rejected_before_resizing():
    limited = ImageTransform(size=(16, 16), crop_pct=0.875, max_pixels=1000)
    with pytest.raises(InputError, match=r"40×30 = 1,200 pixels is larger than the limit of 1,000 pixels"):
        limited(photo(40, 30))
    with pytest.raises(InputError, match="1,200 pixels"):
        limited(np.zeros((30, 40, 3), dtype=np.uint8))
    from PIL import Image as PILImage

    from vision.images import pixel_limit

    assert pixel_limit(IMAGENET.max_pixels) == PILImage.MAX_IMAGE_PIXELS  # PIL's decompression-bomb limit by default
    bomb = PILImage.new("1", (10_000, 9_000))  # 90 Mpx, but 1 bit a pixel: cheap to make
    with pytest.raises(InputError, match=r"10000×9000 = 90,000,000 pixels .* limit of 89,478,485"):
        IMAGENET(bomb)
    with pytest.raises(InputError, match="empty 0×0 image"):
        IMAGENET(PILImage.new("RGB", (0, 0)))
