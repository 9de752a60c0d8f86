"""The vision dataset catalog and readers for custom image data.

Every loader returns :class:`ImageSplits`: raw images with labels per split,
the class names, and a fingerprint of the exact data and split.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data import check_fractions, fingerprint, label_name, read_delimited, stratified_split
from zoo.errors import DownloadError, InputError, OfflineError, WeightsIntegrityError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageDataset(Dataset):
    """Raw images (arrays, or paths opened on access) with integer labels.

    Indexing yields ``(transform(image), label)``; :meth:`raw` gives the untransformed image.
    """

    def __init__(self, images: Sequence[Any], labels: np.ndarray, transform: Callable | None = None):
        if len(images) != len(labels):
            raise InputError(f"expected one label per image, got {len(images)} images and {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def raw(self, index: int) -> Any:
        image = self.images[index]
        if isinstance(image, Path):
            from vision.images import read_image

            return read_image(image)
        return image

    def __getitem__(self, index: int):
        image = self.raw(index)
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def with_transform(self, transform: Callable | None) -> "ImageDataset":
        return ImageDataset(self.images, self.labels, transform)


@dataclass
class ImageSplits:
    """Train/val/test splits of one image-classification dataset."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    classes: list[str]
    fingerprint: str
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable images

    def split(self, name: str) -> ImageDataset:
        dataset = getattr(self, name, None)
        if dataset is None:
            raise InputError(f"expected a split in train/val/test that {self.source} has, got {name!r}")
        return dataset


def digits(seed: int = 0) -> ImageSplits:
    """scikit-learn's 1,797 8×8 digits (values 0–16), split 65/15/20 stratified."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)
    labels = bunch.target.astype(np.int64)
    index = stratified_split(labels, {"val": 0.15, "test": 0.2}, seed=seed)
    make = lambda name: ImageDataset(images[index[name]], labels[index[name]])  # noqa: E731
    return ImageSplits(
        train=make("train"),
        val=make("val"),
        test=make("test"),
        classes=[str(d) for d in range(10)],
        fingerprint=fingerprint(images, labels, *(index[k] for k in ("train", "val", "test"))),
        source="sklearn.datasets.load_digits",
    )


def image_folder(root: str | Path, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0) -> ImageSplits:
    """A folder with one sub-folder of images per class; unreadable images are skipped and reported."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"expected a folder of class sub-folders at {root}, found no folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"expected at least 2 class sub-folders in {root}, found {classes}")
    paths, labels, skipped = [], [], []
    empty, all_unreadable = [], []
    for label, name in enumerate(classes):
        found = readable = 0
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            found += 1
            problem = _unreadable(path)
            if problem:
                skipped.append((str(path), problem))
            else:
                readable += 1
                paths.append(path)
                labels.append(label)
        if not found:
            empty.append(name)
        elif not readable:
            all_unreadable.append(name)
    for path, problem in skipped:
        log.warning("skipping unreadable image %s: %s", path, problem)
    if empty:
        raise InputError(
            f"expected images ({', '.join(sorted(IMAGE_SUFFIXES))}) in every class folder of {root}, but "
            + ", ".join(str(root / name) for name in empty)
            + (" has none" if len(empty) == 1 else " have none")
            + "; add images or remove the empty class folder"
        )
    if all_unreadable:
        bad = [f"{path}: {problem}" for path, problem in skipped if Path(path).relative_to(root).parts[0] in all_unreadable]
        raise InputError(
            f"expected readable images in every class folder of {root}, but every image in "
            + ", ".join(str(root / name) for name in all_unreadable)
            + f" is unreadable: {_listing(bad)}"
        )
    if not paths:
        raise InputError(f"expected images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}, found none readable")
    labels = np.asarray(labels, dtype=np.int64)
    held_out = {"val": val_fraction, **({"test": test_fraction} if test_fraction else {})}
    index = stratified_split(labels, held_out, seed=seed)
    make = lambda name: ImageDataset([paths[i] for i in index[name]], labels[index[name]])  # noqa: E731
    file_hashes = "".join(hashlib.sha256(p.read_bytes()).hexdigest() + str(p.relative_to(root)) for p in paths)
    return ImageSplits(
        train=make("train"),
        val=make("val"),
        test=make("test") if test_fraction else None,
        classes=classes,
        fingerprint=fingerprint(file_hashes, labels, *index.values()),
        source=str(root.resolve()),
        skipped=skipped,
    )


def _listing(items: Sequence[str], limit: int = 5) -> str:
    """``a; b; c`` for up to ``limit`` items, then ``(and N more)``."""
    shown = "; ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _check_splittable(labels: np.ndarray, classes: Sequence[str], fractions: dict[str, float], where: str,
                      how: str | None = None) -> None:
    """Raise InputError naming every class too small for each split to get one image."""
    held_out = {name: f for name, f in fractions.items() if f}
    if not held_out:
        return

    def fits(n: int) -> bool:
        counts = [int(round(n * f)) for f in held_out.values()]
        return min(counts) >= 1 and n - sum(counts) >= 1

    check_fractions(held_out)
    counts = np.bincount(labels, minlength=len(classes))
    small = [f"{classes[c]!r} has {counts[c]}" for c in range(len(classes)) if not fits(int(counts[c]))]
    if small:
        need = next((n for n in range(1, 100_000) if fits(n)), 100_000)
        fracs = how or ", ".join(f"{name}_fraction={f:g}" for name, f in held_out.items())
        splits = "/".join(["train", *held_out])
        raise InputError(
            f"expected at least {need} images per class in {where} to split it {splits} at {fracs}, but "
            f"{_listing(small)}; add images, lower the fraction, or assign splits yourself"
        )


# -- custom data: a CSV of path,label[,split] --------------------------------------
CSV_SPLITS = ("train", "val", "test")


def image_csv(csv_path: str | Path, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0) -> ImageSplits:
    """Images listed in a CSV with a header row ``path,label`` and an optional ``split`` column.

    Paths are relative to the CSV's folder, or absolute. Class names are the sorted
    distinct labels. When a ``split`` column is present every row must name
    ``train``, ``val`` or ``test`` and those splits are used as given; otherwise
    each class is split stratified and deterministically (``val_fraction``,
    ``test_fraction``, ``seed``). Unreadable images are skipped and reported in
    ``skipped``, as in :func:`image_folder`. Column names are case-insensitive;
    other columns are ignored.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"expected a CSV file of path,label rows at {csv_path}, found no file")
    base = csv_path.resolve().parent
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"expected a UTF-8 CSV file at {csv_path}: {type(exc).__name__}: {exc}") from None
    header, rows = read_delimited(text, csv_path)
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]  # spreadsheets' ",," lines
    if not any(header):
        raise InputError(f"expected a CSV with a header row path,label[,split] at {csv_path}, found an empty file")
    columns = [cell.lower() for cell in header]
    missing = [name for name in ("path", "label") if name not in columns]
    if missing:
        raise InputError(
            f"expected columns path,label (and optionally split) in the header of {csv_path}; "
            f"missing {','.join(missing)}, found columns {header}"
        )
    doubled = sorted({name for name in ("path", "label", "split") if columns.count(name) > 1})
    if doubled:
        raise InputError(f"expected each of path,label,split at most once in the header of {csv_path}, "
                         f"found {doubled} more than once in {header}")
    if not rows:
        raise InputError(f"expected at least one path,label row in {csv_path} after the header, found none")
    col = {name: columns.index(name) for name in ("path", "label", "split") if name in columns}
    has_split = "split" in col

    def cell(row: list[str], name: str) -> str:
        return row[col[name]].strip()

    entries, problems, absent, first_line = [], [], [], {}
    for line, row in rows:
        raw_path, label = cell(row, "path"), label_name(row[col["label"]]) or ""
        split = cell(row, "split").lower() if has_split else None
        if not raw_path or not label:
            problems.append(f"line {line}: empty {'path' if not raw_path else 'label'}")
            continue
        if has_split and split not in CSV_SPLITS:
            problems.append(f"line {line}: split {cell(row, 'split')!r} is not one of {'/'.join(CSV_SPLITS)}")
            continue
        path = Path(raw_path).expanduser()
        path = path if path.is_absolute() else base / path
        if not _is_file(path):
            absent.append(f"line {line}: {raw_path}")
            continue
        seen = first_line.setdefault(os.path.realpath(path), line)
        if seen != line:  # one image twice could land in two splits
            problems.append(f"line {line}: {raw_path} is listed already on line {seen}")
            continue
        entries.append((path, label, split))
    if problems:
        raise InputError(f"expected a path, a label{' and a split' if has_split else ''} on every row of {csv_path}, "
                         f"each image once: {_listing(problems)}")
    if absent:
        raise InputError(f"expected every path in {csv_path} to exist (relative to {base} or absolute), but "
                         f"{len(absent)} do not: {_listing(absent)}")
    classes = sorted({label for _, label, _ in entries})
    if len(classes) < 2:
        raise InputError(f"expected at least 2 classes in the label column of {csv_path}, found {classes}")
    class_index = {name: i for i, name in enumerate(classes)}

    paths, labels, splits, skipped = [], [], [], []
    for path, label, split in entries:
        problem = _unreadable(path)
        if problem:
            skipped.append((str(path), problem))
        else:
            paths.append(path)
            labels.append(class_index[label])
            splits.append(split)
    for path, problem in skipped:
        log.warning("skipping unreadable image %s: %s", path, problem)
    if not paths:
        raise InputError(f"expected readable images in {csv_path}, found none readable")
    labels = np.asarray(labels, dtype=np.int64)
    unrepresented = sorted(set(classes) - {classes[i] for i in labels})
    if unrepresented:
        raise InputError(f"expected readable images for every class in {csv_path}, found none for {unrepresented}")

    if has_split:
        split_array = np.asarray(splits)
        index = {name: np.flatnonzero(split_array == name) for name in CSV_SPLITS}
        for name in ("train", "val"):
            if not len(index[name]):
                raise InputError(f"expected rows with split={name} in {csv_path} (its split column is used as given), found none")
    else:
        held_out = {"val": val_fraction, **({"test": test_fraction} if test_fraction else {})}
        _check_splittable(labels, classes, held_out, str(csv_path))
        index = stratified_split(labels, held_out, seed=seed)
        index.setdefault("test", np.zeros(0, dtype=np.int64))
    make = lambda name: ImageDataset([paths[i] for i in index[name]], labels[index[name]])  # noqa: E731
    # Paths under the CSV's folder count relative to it: moving the whole folder keeps the fingerprint.
    file_hashes = "".join(
        hashlib.sha256(p.read_bytes()).hexdigest() + str(p.relative_to(base) if p.is_relative_to(base) else p) for p in paths
    )
    return ImageSplits(
        train=make("train"),
        val=make("val"),
        test=make("test") if len(index["test"]) else None,
        classes=classes,
        fingerprint=fingerprint(file_hashes, labels, *(index[name] for name in CSV_SPLITS)),
        source=str(csv_path.resolve()),
        skipped=skipped,
    )


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a name the system cannot look up (too long, say) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


# -- IDX files (the MNIST family's format) ------------------------------------------
# Magic: two zero bytes, a type code, the number of dimensions; then one big-endian
# uint32 per dimension; then the data, big-endian, row-major.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (raw or gzip-compressed, told by its first bytes) as an array.

    Raises InputError for a bad magic number, a truncated file, trailing bytes or
    corrupt gzip data, naming the file.
    """
    return _read_idx(Path(path))[0]


def _read_idx(path: Path) -> tuple[np.ndarray, str]:
    """The array and the sha256 of the (decompressed) IDX bytes.

    The data is read into one bytearray that ``np.frombuffer`` wraps without a copy
    (uint8 files stay uint8 and writable); multi-byte types come back native-endian.
    """
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            try:
                return _parse_idx(stream, path, compressed)
            finally:
                if compressed:
                    stream.close()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: expected gzip-compressed IDX data, the gzip stream is corrupt or cut short "
                         f"({type(exc).__name__}: {exc})") from None
    except FileNotFoundError:
        raise InputError(f"expected an IDX file at {path}, found no file") from None


def _parse_idx(stream: BinaryIO, path: Path, compressed: bool) -> tuple[np.ndarray, str]:
    hasher = hashlib.sha256()
    what = "gzip-compressed IDX" if compressed else "IDX"
    magic = stream.read(4)
    hasher.update(magic)
    codes = ", ".join(f"{code:02x}" for code in IDX_TYPES)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES or magic[3] == 0:
        raise InputError(
            f"{path} is not an {what} file: expected the magic bytes 00 00 TT NN (TT a type code in {codes}, "
            f"NN ≥ 1 dimensions), got {magic.hex(' ') or 'an empty file'}"
        )
    dtype, ndim = IDX_TYPES[magic[2]], magic[3]
    header = stream.read(4 * ndim)
    hasher.update(header)
    if len(header) < 4 * ndim:
        raise InputError(f"{path} is truncated: expected {ndim} dimension sizes ({4 * ndim} bytes) after the magic "
                         f"number, got {len(header)} bytes")
    dims = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    buf = bytearray()
    while len(buf) < expected:  # grows chunk by chunk: a corrupt header cannot demand a huge allocation up front
        chunk = stream.read(min(_CHUNK, expected - len(buf)))
        if not chunk:
            break
        buf += chunk
    hasher.update(buf)
    if len(buf) < expected:
        raise InputError(f"{path} is truncated: its header declares dims {list(dims)} of {dtype.name} "
                         f"({expected} data bytes), got {len(buf)}")
    extra = stream.read(_CHUNK)
    if extra:
        more = len(extra)
        while chunk := stream.read(_CHUNK):
            more += len(chunk)
        raise InputError(f"{path}: expected {expected} data bytes for dims {list(dims)} of {dtype.name}, "
                         f"got {more} bytes more than that; the header and the data disagree")
    array = np.frombuffer(buf, dtype=dtype).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array, hasher.hexdigest()


# -- Fashion-MNIST ----------------------------------------------------------------
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# The four files (stem; found as STEM.gz or uncompressed as STEM).
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Pinned sha256 of each file's *decompressed* IDX bytes: the same whichever gzip
# (or none) wraps them. Computed from Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1 (/usr/share/datasets/fashion-mnist/); the .gz files
# there are Debian's re-compressions (gzip sha256 b0564c3e…, 0ae29f65…, cc1d090a…,
# 8d3605d1…), so their md5 differs from the one the upstream README publishes for
# its archives (FASHION_MNIST_MD5, kept for reference), while the content is identical.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# md5 of the upstream .gz archives, as listed in the "Get the Data" table of
# https://github.com/zalandoresearch/fashion-mnist/blob/master/README.md.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Where STEM.gz is downloaded from, tried in order. The README's own links
# (http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/) are plain http, which
# zoo's downloader refuses; the repository's data/fashion/ folder serves the same files over https.
FASHION_MNIST_MIRRORS = [
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
]
# Where Debian's dataset-fashion-mnist package puts the files (`dpkg -L dataset-fashion-mnist`).
FASHION_MNIST_SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FASHION_MNIST_VAL_SIZE = 5000


class DataIntegrityError(WeightsIntegrityError):
    """A data file whose content sha256 is not the pinned one (a WeightsIntegrityError: file and both hashes)."""

    def __init__(self, path: str, expected: str, actual: str, advice: str):
        super().__init__(path, expected, actual)
        self.args = (f"sha256 mismatch for {path} (hashed after decompression): expected {expected}, got {actual}; {advice}",)


def fashion_mnist_locations() -> list[tuple[str, Path]]:
    """The folders searched for the four files, in order, each with a word on what it is.

    ``$ZOO_DATA/fashion-mnist`` (when ZOO_DATA is set), Debian's dataset-fashion-mnist
    package, then the zoo cache (``$ZOO_HOME/datasets/fashion-mnist``), where downloads land when
    ZOO_DATA is not set.
    """
    from zoo.cache import zoo_home

    places = []
    if os.environ.get("ZOO_DATA"):
        places.append(("$ZOO_DATA", Path(os.environ["ZOO_DATA"]).expanduser() / "fashion-mnist"))
    places += [("the Debian package dataset-fashion-mnist", d) for d in FASHION_MNIST_SYSTEM_DIRS]
    places.append(("the zoo cache", zoo_home() / "datasets" / "fashion-mnist"))
    return places


def _fashion_download_dir() -> Path:
    """Where missing files are downloaded: ``$ZOO_DATA/fashion-mnist``, else the zoo cache."""
    from zoo.cache import zoo_home

    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"]).expanduser() / "fashion-mnist"
    return zoo_home() / "datasets" / "fashion-mnist"


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _find_fashion_mnist() -> tuple[Path, dict[str, Path]] | None:
    """The first location holding all four files, or None."""
    for what, folder in fashion_mnist_locations():
        files = {stem: _idx_file(folder, stem) for stem in FASHION_MNIST_FILES}
        if all(files.values()):
            return folder, files
        if any(files.values()):
            log.warning("ignoring %s at %s: it lacks %s", what, folder, ", ".join(s for s, p in files.items() if not p))
    return None


def fashion_mnist_available() -> bool:
    """Whether the four Fashion-MNIST files are on this machine (no download)."""
    return _find_fashion_mnist() is not None


def _fetch_fashion_mnist(checksums: dict[str, str] | None, progress: bool) -> tuple[Path, dict[str, Path]]:
    """Fetch the missing files into :func:`_fashion_download_dir` through the zoo store: the mirrors in
    order, each file checked against its pinned content sha256 before it lands there."""
    from zoo import cache
    from zoo.registry import WeightFile

    target = _fashion_download_dir()
    missing = [stem for stem in FASHION_MNIST_FILES if not _idx_file(target, stem)]
    pins = checksums or FASHION_MNIST_SHA256  # look-alike data (checksums=None) is never what is downloaded
    try:
        for stem in missing:
            name = f"{stem}.gz"
            wf = WeightFile(name, None, FASHION_MNIST_MIRRORS[0] + name, format="raw",
                            mirrors=tuple(mirror + name for mirror in FASHION_MNIST_MIRRORS[1:]),
                            digest=f"gunzip-sha256:{pins[stem]}")
            log.info("fetching %s", name)
            cache.fetch(wf, dest=target / name, progress=progress)
    except OfflineError:
        searched = ", ".join(str(folder) for _, folder in fashion_mnist_locations())
        raise OfflineError(
            f"Fashion-MNIST is not on this machine (looked in {searched}) and {cache.offline_reason()}; "
            f"fetch {', '.join(s + '.gz' for s in missing)} from {FASHION_MNIST_MIRRORS[0]} and put them in "
            f"{target} (or under $ZOO_DATA/fashion-mnist/, or `apt install dataset-fashion-mnist`), then retry"
        ) from None
    except DownloadError as exc:
        raise DownloadError(f"{exc}; put the file in {target} by hand (or `apt install dataset-fashion-mnist`), "
                            "then retry") from None
    return target, {stem: _idx_file(target, stem) for stem in FASHION_MNIST_FILES}


def _read_checked(path: Path, stem: str, checksums: dict[str, str] | None) -> tuple[np.ndarray, str]:
    array, digest = _read_idx(path)
    if checksums is not None and digest != checksums[stem]:
        raise DataIntegrityError(str(path), checksums[stem], digest,
                                 f"the file is corrupt or not the official {stem}; replace it with the official file")
    return array, digest


def fashion_mnist(
    root: str | Path | None = None,
    *,
    val_size: int = FASHION_MNIST_VAL_SIZE,
    seed: int = 0,
    checksums: dict[str, str] | None = FASHION_MNIST_SHA256,
    download: bool = True,
    progress: bool = False,
) -> ImageSplits:
    """Zalando's Fashion-MNIST: 28×28 uint8 grey images of 10 clothing classes.

    ``train`` is the official 60,000 training images minus ``val_size`` (5,000) held
    out stratified and deterministically (``seed``) as ``val``; ``test`` is the official
    10,000. The four IDX files (``.gz`` or uncompressed) are read from ``root`` when
    given, else from the first of :func:`fashion_mnist_locations` that holds all four,
    else downloaded (unless ``download=False`` or ZOO_OFFLINE is set). Every file's
    decompressed bytes must hash to ``checksums`` (the pinned sha256; ``None`` skips the
    check, for look-alike data); a mismatch raises :class:`DataIntegrityError`, a
    :class:`zoo.errors.WeightsIntegrityError` naming the file and both hashes.
    """
    if root is not None:
        folder = Path(root)
        files = {stem: _idx_file(folder, stem) for stem in FASHION_MNIST_FILES}
        lacking = [stem for stem, path in files.items() if path is None]
        if lacking:
            raise InputError(f"expected the Fashion-MNIST IDX files {', '.join(lacking)} (.gz or uncompressed) "
                             f"in {folder}, found {sorted(p.name for p in folder.iterdir()) if folder.is_dir() else 'no folder'}")
    else:
        found = _find_fashion_mnist()
        if found is None:
            if not download:
                raise InputError("expected Fashion-MNIST in one of "
                                 + ", ".join(f"{w} ({f})" for w, f in fashion_mnist_locations()) + ", found it in none")
            found = _fetch_fashion_mnist(checksums, progress)
        folder, files = found
    log.info("reading Fashion-MNIST from %s", folder)

    digests, parts = {}, {}
    for stem in FASHION_MNIST_FILES:
        parts[stem], digests[stem] = _read_checked(files[stem], stem, checksums)
    splits = {}
    for kind in ("train", "t10k"):
        images, labels = parts[f"{kind}-images-idx3-ubyte"], parts[f"{kind}-labels-idx1-ubyte"]
        images_file, labels_file = files[f"{kind}-images-idx3-ubyte"], files[f"{kind}-labels-idx1-ubyte"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise InputError(f"{images_file}: expected N×28×28 uint8 images, got {'×'.join(map(str, images.shape))} {images.dtype}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise InputError(f"{labels_file}: expected a 1-D uint8 label array, got shape {labels.shape} {labels.dtype}")
        if len(images) != len(labels):
            raise InputError(f"expected one label per image, but {images_file} has {len(images)} images "
                             f"and {labels_file} has {len(labels)} labels")
        if len(labels) and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise InputError(f"{labels_file}: expected labels 0–{len(FASHION_MNIST_CLASSES) - 1}, found {int(labels.max())}")
        splits[kind] = (images, labels.astype(np.int64))

    images, labels = splits["train"]
    if not 0 < val_size < len(labels):
        raise InputError(f"expected val_size between 1 and {len(labels) - 1} (the training set has {len(labels)} images), got {val_size}")
    fractions = {"val": val_size / len(labels)}
    _check_splittable(labels, FASHION_MNIST_CLASSES, fractions, str(files["train-labels-idx1-ubyte"]),
                      how=f"val_size={val_size} (of {len(labels)})")
    index = stratified_split(labels, fractions, seed=seed)
    test_images, test_labels = splits["t10k"]
    return ImageSplits(
        train=ImageDataset(images[index["train"]], labels[index["train"]]),
        val=ImageDataset(images[index["val"]], labels[index["val"]]),
        test=ImageDataset(test_images, test_labels),
        classes=list(FASHION_MNIST_CLASSES),
        fingerprint=fingerprint(*(digests[stem] for stem in FASHION_MNIST_FILES), index["train"], index["val"], "test=t10k"),
        source=str(folder),
    )


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image (corrupt, or beyond the size limits), or None when it can."""
    from vision.images import read_image

    try:
        read_image(path)
    except InputError as exc:
        return str(exc)
    return None


def load_splits(data: str | Path, val_fraction: float = 0.2) -> ImageSplits:
    """A registered dataset id (``vision/digits``, fixed splits), an image folder, or a ``.csv`` of path,label[,split].

    Folders, and CSVs without a split column, are split stratified with ``val_fraction``.
    """
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) not in registry.datasets:
        path = Path(data)
        if path.is_dir():
            return image_folder(path, val_fraction=val_fraction)
        if path.suffix.lower() == ".csv":
            return image_csv(path, val_fraction=val_fraction)
    spec = registry.dataset(str(data))
    if spec.task != "image-classification":
        known = sorted(k for k, d in registry.datasets.items() if d.task == "image-classification")
        raise InputError(f"{spec.id} is a dataset for {spec.task}, not image-classification: image "
                         f"classification reads one of {known}, an image folder or a .csv")
    return resolve_ref(spec.loader)()


def to_tensor_batch(dataset: ImageDataset, transform: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform a whole (small) split into one input tensor and a label tensor."""
    inputs = torch.stack([transform(dataset.raw(i)) for i in range(len(dataset))])
    return inputs, torch.from_numpy(dataset.labels)
