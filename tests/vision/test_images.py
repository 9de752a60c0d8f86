"""Image files and arrays from users: size limits before decoding, every PIL mode, EXIF orientation, strict .npy."""
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import zoo
from vision.images import read_image
from vision.transforms import ImageBatcher, ImageTransform
from zoo.arrays import read_npy
from zoo.errors import InputError

HALF = (0.5, 0.5, 0.5)
IMAGENET = ImageTransform(size=(224, 224), mean=HALF, std=HALF, crop_pct=0.875, interpolation="bicubic")
GREY = ImageTransform(size=(16, 16), channels=1)


@pytest.fixture(scope="module")
def digits_model():
    return zoo.load("vision/digits_cnn.sklearn", device="cpu")


def png_with_size(path, width, height, mode="L"):
    """A real PNG whose IHDR claims ``width``×``height`` (CRC fixed), its data that of a 1×1 image."""
    Image.new(mode, (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


# -- decompression and resize bombs ---------------------------------------------------------------
def test_a_178_byte_100000x1_png_is_refused_by_its_aspect_ratio(tmp_path, digits_model):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (100_000, 1)).save(bomb)
    assert bomb.stat().st_size < 300
    message = r"100000×1 has an aspect ratio of 1e\+05:1, beyond the limit of 100:1 .* ZOO_MAX_IMAGE_ASPECT="
    with pytest.raises(InputError, match=message):
        digits_model.adapter.read(bomb)  # zoo predict's reader
    with pytest.raises(InputError, match=message):
        ImageBatcher(IMAGENET)([str(bomb)])  # zoo.runtime's batcher
    with Image.open(bomb) as lazy, pytest.raises(InputError, match=message):
        IMAGENET(lazy)  # a PIL image a user opened: checked before it is decoded


def test_resize_targets_stay_bounded_when_the_aspect_limit_is_raised(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (100_000, 1)).save(bomb)
    monkeypatch.setenv("ZOO_MAX_IMAGE_ASPECT", "1000000")
    with pytest.raises(InputError, match=r"the resize target: image of 25600000×256 = 6,553,600,000 pixels is "
                                         r"larger than the limit of 89,478,485"):
        ImageBatcher(IMAGENET)([str(bomb)])
    wide = tmp_path / "wide.png"
    Image.new("L", (2000, 10), 255).save(wide)  # 200:1, allowed now: a normal result
    batch = ImageBatcher(IMAGENET)([wide])["input"]
    assert batch.shape == (1, 3, 224, 224) and np.allclose(batch, 1.0)


def test_bombs_keep_peak_memory_small(tmp_path):
    """On the old code the 10000×1 PNG alone peaked at 3.4 GB (a 2.56M×256 intermediate)."""
    for width in (10_000, 100_000):
        Image.new("L", (width, 1)).save(tmp_path / f"{width}.png")
    script = f"""
import sys
from vision.transforms import ImageBatcher, ImageTransform
from zoo.errors import InputError
batcher = ImageBatcher(ImageTransform(size=(224, 224), crop_pct=0.875, interpolation="bicubic"))
for name in ("10000.png", "100000.png"):
    try:
        batcher([{str(tmp_path)!r} + "/" + name])
        sys.exit(name + " gave a result")
    except InputError:
        pass
# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its (big) parent's
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) < 300, f"peak RSS {run.stdout.strip()} MB"


def test_pixel_count_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch, digits_model):
    huge = png_with_size(tmp_path / "144mpx.png", 12_000, 12_000, "RGB")

    def no_decoding(self):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    message = r"12000×12000 = 144,000,000 pixels is larger than the limit of 89,478,485 pixels .* ZOO_MAX_IMAGE_PIXELS="
    with pytest.raises(InputError, match=message):
        digits_model.adapter.read(huge)
    with pytest.raises(InputError, match=message):
        ImageBatcher(IMAGENET)([huge])


def test_the_pixel_limit_is_raised_by_environment_and_follows_pil(tmp_path, monkeypatch):
    image = tmp_path / "40x30.png"
    Image.new("RGB", (40, 30)).save(image)
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match=r"1,200 pixels is larger than the limit of 1,000 pixels.*ZOO_MAX_IMAGE_PIXELS=1200"):
        read_image(image)
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", "1200")
    assert read_image(image).size == (40, 30)
    limited = ImageTransform(size=(16, 16), max_pixels=1000)  # the environment overrides a card's max_pixels
    assert limited(read_image(image)).shape == (3, 16, 16)
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="expected ZOO_MAX_IMAGE_PIXELS to be a number of at least 1, got 'lots'"):
        read_image(image)
    monkeypatch.delenv("ZOO_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's own limit, lowered by the user, is respected
    with pytest.raises(InputError, match="limit of 1,000 pixels"):
        read_image(image)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # above twice PIL's limit, PIL refuses to open it
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", "10000")
    with pytest.raises(InputError, match=r"decompression bomb.* raise both PIL.Image.MAX_IMAGE_PIXELS and ZOO_MAX_IMAGE_PIXELS"):
        read_image(image)


def test_zoo_predict_refuses_bombs_in_one_line(tmp_path):
    Image.new("L", (100_000, 1)).save(tmp_path / "wide.png")
    png_with_size(tmp_path / "huge.png", 12_000, 12_000, "RGB")
    for name, message in [("wide.png", "aspect ratio"), ("huge.png", "144,000,000 pixels")]:
        run = subprocess.run([sys.executable, "-m", "zoo", "predict", "vision/digits_cnn.sklearn", str(tmp_path / name)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 1 and len(lines) == 1 and message in lines[0], run.stderr


def test_image_folders_skip_bombs_with_the_reason(tmp_path):
    from vision.datasets import image_folder

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("L", (8, 8), i * 40).save(tmp_path / label / f"{i}.png")
    Image.new("L", (100_000, 1)).save(tmp_path / "a" / "bomb.png")
    png_with_size(tmp_path / "b" / "huge.png", 12_000, 12_000)
    splits = image_folder(tmp_path, val_fraction=0.4)
    reasons = dict(splits.skipped)
    assert set(reasons) == {str(tmp_path / "a" / "bomb.png"), str(tmp_path / "b" / "huge.png")}
    assert "aspect ratio" in reasons[str(tmp_path / "a" / "bomb.png")]
    assert "144,000,000 pixels" in reasons[str(tmp_path / "b" / "huge.png")]


# -- every PIL mode, from files ------------------------------------------------------------------------
def lab_white_and_black():
    lab = Image.new("LAB", (8, 8), (255, 128, 128))  # L=100: white
    lab.paste((0, 128, 128), (0, 0, 4, 8))  # left half L=0: black
    return lab


def mode_images():
    rgb = Image.new("RGB", (8, 8), "white")
    rgb.paste((0, 0, 0), (0, 0, 4, 8))
    palette = rgb.convert("P")
    palette.info["transparency"] = 0
    return {
        "LAB.tif": lab_white_and_black(),
        "CMYK.tif": rgb.convert("CMYK"),
        "YCbCr.tif": rgb.convert("YCbCr"),
        "F.tif": rgb.convert("F"),
        "I16.png": Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)),
        "I16B.tif": Image.fromarray(np.asarray(rgb.convert("L")).astype(">u2") * 257),
        "P-transparent.png": palette,
        "LA.png": rgb.convert("LA"),
        "1.png": rgb.convert("1"),
        "RGBA.tif": rgb.convert("RGBA"),
    }


@pytest.mark.parametrize("name", sorted(mode_images()))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_pil_mode_converts_correctly_or_is_refused(tmp_path, name, channels):
    path = tmp_path / name
    mode_images()[name].save(path)
    image = read_image(path)
    out = ImageTransform(size=(8, 8), channels=channels)(image)
    assert out.shape == (channels, 8, 8) and torch.isfinite(out).all()
    if name.startswith("P-"):  # colour 0 (black, the left half) is transparent: white
        assert torch.allclose(out, torch.ones_like(out), atol=1 / 255)
    else:  # black left half, white right half
        assert torch.allclose(out[:, :, :4], torch.zeros(channels, 8, 4), atol=2 / 255), name
        assert torch.allclose(out[:, :, 4:], torch.ones(channels, 8, 4), atol=2 / 255), name


def test_in_memory_modes_pil_cannot_convert_directly():
    lab = ImageTransform(size=(8, 8), channels=1)(lab_white_and_black())  # LAB → L goes through RGB
    assert torch.allclose(lab[:, :, 4:], torch.ones(1, 8, 4), atol=2 / 255) and torch.all(lab[:, :, :4] < 2 / 255)
    hsv = Image.new("HSV", (4, 4), (0, 255, 255))  # pure red
    assert torch.allclose(ImageTransform(size=(4, 4))(hsv)[:, 0, 0], torch.tensor([1.0, 0, 0]))
    premultiplied = Image.new("RGBA", (4, 4), (255, 255, 255, 255)).convert("RGBa")
    assert torch.allclose(GREY(premultiplied), torch.ones(1, 16, 16))


# -- EXIF orientation ---------------------------------------------------------------------------------
def upright_and_sideways():
    upright = np.zeros((40, 20), dtype=np.uint8)
    upright[:10] = 255  # a white band at the top
    sideways = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a phone's sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return Image.fromarray(upright), sideways, exif


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix, digits_model):
    upright, sideways, exif = upright_and_sideways()
    path = tmp_path / f"photo{suffix}"
    sideways.save(path, exif=exif)
    read = read_image(path)
    assert read.size == (20, 40)
    top, bottom = np.asarray(read.convert("L"))[:10].mean(), np.asarray(read.convert("L"))[-10:].mean()
    assert top > 240 and bottom < 15
    assert read.getexif().get(0x0112, 1) == 1  # the tag is removed: nothing downstream turns it again
    batch = ImageBatcher(GREY)([path])["input"][0]
    assert np.allclose(batch, GREY(upright).numpy(), atol=3 / 255)
    read_scores = digits_model.predict(digits_model.adapter.read(path))["top_k"]
    upright_scores, sideways_scores = (digits_model.predict(image)["top_k"] for image in (upright, sideways))
    tolerance = 1e-6 if suffix == ".png" else 0.05  # JPEG is lossy
    assert [label for label, _ in read_scores] == [label for label, _ in upright_scores]
    assert np.allclose([s for _, s in read_scores], [s for _, s in upright_scores], atol=tolerance)
    assert upright_scores != sideways_scores


# How a camera stores an upright picture for each EXIF orientation (TIFF 6.0: the transform that undoes it is the display's).
STORED_AS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_every_exif_orientation_reads_upright(tmp_path, orientation):
    upright = np.zeros((30, 20), dtype=np.uint8)
    upright[:5, :10] = 255  # a mark in the top-left corner: every flip and turn moves it
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).transpose(STORED_AS[orientation]).save(tmp_path / "photo.png", exif=exif)
    assert np.array_equal(np.asarray(read_image(tmp_path / "photo.png")), upright)


# -- .npy files ------------------------------------------------------------------------------------------
def npy_bytes(array, **header_changes):
    """``np.save``'s bytes for ``array`` with header fields replaced (the text padded as numpy pads it)."""
    from numpy.lib import format as npy

    header = {**npy.header_data_from_array_1_0(array), **header_changes}
    text = repr(header).encode("latin1")
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + array.tobytes(order="A")


GOOD = np.arange(64, dtype=np.float64).reshape(8, 8) / 4


@pytest.mark.parametrize("content, message", [
    (lambda: npy_bytes(GOOD)[:-100], r"header says 8×8 float64 \(512 bytes of data\), but the file holds 412 bytes"),
    (lambda: npy_bytes(GOOD, shape=(64, 64)), r"header says 64×64 float64 .* holds 512 bytes"),
    (lambda: npy_bytes(GOOD, shape=(4, 4)), r"header says 4×4 float64 \(128 bytes of data\), but the file holds 512"),
    (lambda: npy_bytes(GOOD, shape=(2 ** 62, 2 ** 62)), "header says"),
    (lambda: npy_bytes(np.array([1, "a"], dtype=object)), "got dtype object"),
    (lambda: npy_bytes(np.array(["abc"])), "got dtype <U3"),
    (lambda: npy_bytes(np.zeros(2, dtype=[("a", "<f4")])), "array of numbers"),
    (lambda: npy_bytes(GOOD, descr="<zz"), "could not read its header"),
    (lambda: npy_bytes(GOOD).replace(b"'shape'", b"'shap'"), "could not read its header"),
    (lambda: b"\x93NUMPY\x01\x00\xff", "could not read its header"),
    (lambda: b"PK\x03\x04 not numpy", "could not read its header"),
    (lambda: b"\x93NUMPY\x09\x00" + npy_bytes(GOOD)[8:], r"format version 1.0 or 2.0, got version \(9, 0\)"),
    (lambda: npy_bytes(np.array(3.0)), "0-d array"),
    (lambda: npy_bytes(np.full((8, 8), np.nan)), "NaN or infinite"),
    (lambda: npy_bytes(np.full((8, 8), np.inf, dtype=np.float32)), "NaN or infinite"),
])
def test_bad_npy_files_raise_input_error_naming_the_file(tmp_path, content, message, digits_model):
    path = tmp_path / "input.npy"
    path.write_bytes(content())
    with pytest.raises(InputError, match=message) as raised:
        read_npy(path)
    assert str(path) in str(raised.value)
    with pytest.raises(InputError, match=str(path)):
        digits_model.adapter.read(path)


def test_npy_files_in_fortran_order_or_big_endian_read_as_saved(tmp_path):
    for array in (np.asfortranarray(GOOD), GOOD.astype(">f8"), GOOD.astype(">i4"), GOOD > 4):
        np.save(tmp_path / "a.npy", array)
        read = read_npy(tmp_path / "a.npy")
        assert np.array_equal(read, array) and read.dtype.isnative and read.flags.c_contiguous
    assert read_npy(tmp_path / "a.npy").dtype == np.bool_


def test_image_npy_files_need_two_or_three_dimensions(tmp_path, digits_model):
    np.save(tmp_path / "flat.npy", GOOD.ravel())
    with pytest.raises(InputError, match=r"flat.npy: expected an image array of 2 .* got shape \(64,\)"):
        digits_model.adapter.read(tmp_path / "flat.npy")
    np.save(tmp_path / "digit.npy", GOOD)
    assert digits_model.predict(digits_model.adapter.read(tmp_path / "digit.npy"))["label"] in digits_model.card.labels


def test_zoo_predict_on_an_object_npy_is_one_line(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    run = subprocess.run([sys.executable, "-m", "zoo", "predict", "vision/digits_cnn.sklearn", "--json",
                          str(tmp_path / "objects.npy")], capture_output=True, text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "got dtype object" in lines[0], run.stderr
    assert not run.stdout  # nothing predicted


# -- a card's preprocessing is untrusted too ---------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ({}, "with a size"),
    ({"size": "ab"}, "size must be [height, width], two positive integers"),
    ({"size": [8, 0]}, "size must be [height, width], two positive integers"),
    ({"size": [8, 8], "channels": 3, "mean": [0.5, 0.5]}, "mean must be 1 or 3 (channels) finite numbers"),
    ({"size": [8, 8], "std": [0]}, "std must not be 0"),
    ({"size": [8, 8], "std": ["x"]}, "std must be 1 or 3 (channels) finite numbers"),
    ({"size": [8, 8], "array_range": [5, 5]}, "low < high"),
    ({"size": [8, 8], "max_pixels": "many"}, "with a size"),
])
def test_malformed_preprocessing_raises_input_error(spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        ImageTransform.from_preprocessing(spec)


def test_a_cards_resize_target_is_bounded_too():
    huge_target = ImageTransform.from_preprocessing({"size": [100_000, 100_000]})
    with pytest.raises(InputError, match=r"the resize target: image of 100000×100000 = 10,000,000,000 pixels"):
        huge_target(Image.new("RGB", (4, 4)))
