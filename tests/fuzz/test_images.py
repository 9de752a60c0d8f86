"""Fuzz the image and array readers with mutated real files.

Seeds are skimage photos saved small in every format and mode the zoo reads,
plus ``.npy`` files; each example truncates them, flips, inserts or deletes
bytes, rewrites PNG IHDR sizes (with or without a fixed CRC) or garbles the
``.npy`` header. The vision adapter's read + predict path (the digits CNN) and
the runtime ``ImageBatcher`` must return a valid result or a ``ZooError``, and
the process's peak memory must stay bounded (no decompression or resize bomb).
"""
import io
import re
import struct
import zlib
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.fuzz import harness
from vision.transforms import ImageBatcher, ImageTransform

MEMORY_GROWTH_LIMIT_MB = 1024


@lru_cache(maxsize=None)
def image_seeds() -> dict[str, bytes]:
    """Small real photos as file bytes, by file name: every format, and the awkward modes."""
    from skimage import data

    photo = Image.fromarray(data.chelsea()).resize((24, 18))
    grey = Image.fromarray(data.camera()).resize((16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    sixteen = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    variants = {
        "photo.png": (photo, {}), "photo.jpg": (photo, {"exif": exif}), "photo.tif": (photo, {}),
        "photo.bmp": (photo, {}), "photo.gif": (photo, {}), "photo.webp": (photo, {}),
        "grey.png": (grey, {}), "rgba.png": (photo.convert("RGBA"), {}), "la.png": (grey.convert("LA"), {}),
        "palette.png": (photo.convert("P"), {"transparency": 0}), "bits.png": (grey.convert("1"), {}),
        "sixteen.png": (sixteen, {}), "cmyk.tif": (photo.convert("CMYK"), {}), "lab.tif": (photo.convert("LAB"), {}),
        "float.tif": (grey.convert("F"), {}), "ycbcr.jpg": (photo, {"subsampling": 2}),
        "exif.png": (photo, {"exif": exif}),
    }
    seeds = {}
    for name, (image, options) in variants.items():
        stream = io.BytesIO()
        image.save(stream, format=Image.registered_extensions()["." + name.rsplit(".", 1)[1]], **options)
        seeds[name] = stream.getvalue()
    return seeds


@lru_cache(maxsize=None)
def npy_seeds() -> dict[str, bytes]:
    digit = np.arange(64, dtype=np.float64).reshape(8, 8) % 17
    arrays = {"digit.npy": digit, "digit32be.npy": digit.astype(">f4"), "digitu8.npy": digit.astype(np.uint8),
              "fortran.npy": np.asfortranarray(digit), "hwc.npy": np.zeros((8, 8, 3), np.uint8),
              "bools.npy": digit > 8}
    seeds = {}
    for name, array in arrays.items():
        stream = io.BytesIO()
        np.save(stream, array)
        seeds[name] = stream.getvalue()
    return seeds


@lru_cache(maxsize=None)
def digits_model():
    import zoo

    return zoo.load("vision/digits_cnn.sklearn", device="cpu")


BATCHERS = {
    "crop": ImageBatcher(ImageTransform(size=(32, 32), crop_pct=0.875, interpolation="bicubic")),
    "digits": ImageBatcher(ImageTransform(size=(8, 8), channels=1, mean=(0.5,), std=(0.5,), array_range=(0, 16))),
}


def peak_rss_mb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) // 1024


BASELINE_MB = peak_rss_mb()

# -- mutations of real files ------------------------------------------------------------------------------
SIZES = st.sampled_from([0, 1, 2, 7, 255, 256, 65535, 100_000, 2 ** 24, 2 ** 31 - 1, 2 ** 32 - 1])


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "size", "header"]))
        # Half the positions fall in the header (past the magic number): where parsers branch.
        at = draw(st.one_of(st.integers(min(8, len(data)), min(63, len(data))), st.integers(0, len(data))))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip":
            if at < len(data):
                data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "size" and name.endswith(".png") and data[12:16] == b"IHDR":
            data[16:24] = struct.pack(">II", draw(SIZES), draw(SIZES))
            if draw(st.booleans()):  # a fixed CRC gets the lie past PIL's check
                data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        elif kind == "header" and name.endswith(".npy"):
            data = bytearray(garbled_npy_header(draw, bytes(data)))
    return name, bytes(data)


def garbled_npy_header(draw, data: bytes) -> bytes:
    """A ``.npy`` file whose header dict says another shape, dtype or order (length field kept or fixed)."""
    if len(data) < 10:
        return data
    length = struct.unpack("<H", data[8:10])[0]
    text = data[10:10 + length].decode("latin1")
    field = draw(st.sampled_from(["shape", "descr", "fortran_order"]))
    value = {
        "shape": draw(st.sampled_from(["()", "(8,)", "(0, 8)", "(8, 8)", "(4, 4)", "(64, 64)", "(8, 8, 3)",
                                       "(2**62, 2)", "(-1, 8)", "(8, 8, 1, 1)", "'x'", "(1e9,)"])),
        "descr": draw(st.sampled_from(["'|O'", "'<U4'", "'>f8'", "'<f2'", "'<c16'", "'|V8'", "'<M8[s]'",
                                       "[('a', '<f4')]", "'<i8'", "'|b1'", "'zz'", "3"])),
        "fortran_order": draw(st.sampled_from(["True", "False", "None", "'yes'"])),
    }[field]
    text = re.sub(rf"'{field}': (\([^)]*\)|[^,}}]*)", lambda _: f"'{field}': {value}", text, count=1)
    body = text.encode("latin1")
    if draw(st.booleans()):
        return data[:8] + struct.pack("<H", len(body)) + body + data[10 + length:]
    return data[:10] + body + data[10 + length:]


def written(directory, name: str, content: bytes):
    path = directory / name
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_images")


def check_bounded_memory():
    grown = peak_rss_mb() - BASELINE_MB
    assert grown < MEMORY_GROWTH_LIMIT_MB, f"peak memory grew by {grown} MB"


def check_prediction(prediction):
    model = digits_model()
    assert prediction["label"] in model.card.labels and 0 <= prediction["score"] <= 1


# -- properties --------------------------------------------------------------------------------------------
def read_and_predict(reader: str, workdir, example) -> None:
    """The digits CNN's ``read`` + ``predict`` on one mutated file: a valid prediction or a ZooError."""
    name, content = example
    model = digits_model()
    path = written(workdir, name, content)
    prediction = harness.call(reader, lambda: model.predict(model.adapter.read(path)))
    if prediction is not None:
        check_prediction(prediction)
    check_bounded_memory()


@given(mutated(image_seeds()))
def test_vision_read_and_predict_on_mutated_images(workdir, example):
    read_and_predict("vision.read+predict (image)", workdir, example)


@given(mutated(npy_seeds()))
def test_vision_read_and_predict_on_mutated_npy(workdir, example):
    read_and_predict("vision.read+predict (npy)", workdir, example)


@given(mutated({**image_seeds(), **npy_seeds()}), st.sampled_from(sorted(BATCHERS)))
def test_runtime_image_batcher_on_mutated_files(workdir, example, batcher):
    name, content = example
    path = written(workdir, name, content)
    batch = harness.call("vision.ImageBatcher", BATCHERS[batcher], [path])
    if batch is not None:
        transform = BATCHERS[batcher].transform
        assert batch["input"].shape == (1, transform.channels, *transform.size)
        assert batch["input"].dtype == np.float32 and np.isfinite(batch["input"]).all()
    check_bounded_memory()
