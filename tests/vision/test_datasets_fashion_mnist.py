"""Fashion-MNIST: the IDX reader, the look-up order, checksums, downloads and offline use.

Every test but the last writes small IDX files itself; the last reads Debian's
dataset-fashion-mnist files when they are installed.
"""
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

import vision.datasets as ds
from vision.datasets import DataIntegrityError, fashion_mnist, read_idx
from zoo.errors import InputError, OfflineError, WeightsIntegrityError

TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
              np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    header = bytes([0, 0, TYPE_CODES[array.dtype.newbyteorder("=")], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> str:
    """Write ``array`` as IDX (gzip-compressed when ``gz``); return the sha256 of the IDX bytes."""
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return hashlib.sha256(data).hexdigest()


def make_fashion(folder: Path, per_class: int = 6, test_per_class: int = 2, gz: bool = True, seed: int = 0) -> dict:
    """A tiny Fashion-MNIST look-alike in ``folder``; returns the checksums of its four files."""
    rng = np.random.default_rng(seed)
    sums = {}
    for kind, count in (("train", per_class), ("t10k", test_per_class)):
        labels = np.tile(np.arange(10, dtype=np.uint8), count)
        rng.shuffle(labels)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        suffix = ".gz" if gz else ""
        sums[f"{kind}-images-idx3-ubyte"] = write_idx(folder / f"{kind}-images-idx3-ubyte{suffix}", images, gz)
        sums[f"{kind}-labels-idx1-ubyte"] = write_idx(folder / f"{kind}-labels-idx1-ubyte{suffix}", labels, gz)
    return sums


@pytest.fixture
def no_system_copy(monkeypatch, tmp_path):
    """Hide Debian's copy (so the look-up is decided by the test) and unset ZOO_DATA / ZOO_OFFLINE."""
    monkeypatch.setattr(ds, "FASHION_MNIST_SYSTEM_DIRS", [tmp_path / "no-system-copy"])
    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)


# -- the IDX reader ----------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trips_every_type_raw_and_gzipped(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / "a.idx", array, gz)
    got = read_idx(tmp_path / "a.idx")
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (2, 3, 4)
    assert np.array_equal(got, array)
    assert got.flags.writeable


def test_read_idx_is_told_gzip_by_content_not_name(tmp_path):
    write_idx(tmp_path / "named-raw-but-gzipped", np.ones((2, 2), np.uint8), gz=True)
    assert read_idx(tmp_path / "named-raw-but-gzipped").tolist() == [[1, 1], [1, 1]]


def test_read_idx_rejects_a_bad_magic_number(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x01\x08\x01" + b"\x00" * 8)
    with pytest.raises(InputError, match=r"bad is not an IDX file.*got 00 01 08 01"):
        read_idx(tmp_path / "bad")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(InputError, match=r"not an IDX file.*00 00 07 01"):
        read_idx(tmp_path / "code")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InputError, match="an empty file"):
        read_idx(tmp_path / "empty")
    (tmp_path / "png.gz").write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n"))
    with pytest.raises(InputError, match="not an gzip-compressed IDX file"):
        read_idx(tmp_path / "png.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_reports_truncated_data_and_header(tmp_path, gz):
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    short = data[:-100]
    (tmp_path / "short").write_bytes(gzip.compress(short) if gz else short)
    with pytest.raises(InputError, match=r"short is truncated: its header declares dims \[5, 28, 28\] of uint8 \(3920 data bytes\), got 3820"):
        read_idx(tmp_path / "short")
    head = data[:9]
    (tmp_path / "head").write_bytes(gzip.compress(head) if gz else head)
    with pytest.raises(InputError, match="head is truncated: expected 3 dimension sizes"):
        read_idx(tmp_path / "head")


def test_read_idx_reports_a_cut_gzip_stream_and_trailing_bytes(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(40, 100) % 7))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=r"cut.gz: expected gzip-compressed IDX data, the gzip stream is corrupt or cut short"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "long").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8)) + b"junk")
    with pytest.raises(InputError, match="long: expected 6 data bytes .* got 4 bytes more"):
        read_idx(tmp_path / "long")


def test_mismatched_image_and_label_counts_name_both_files(tmp_path, no_system_copy):
    sums = make_fashion(tmp_path)
    labels = np.zeros(59, np.uint8)
    labels[:50] = np.repeat(np.arange(10), 5)
    sums["train-labels-idx1-ubyte"] = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte.gz has 60 images and .*train-labels-idx1-ubyte.gz has 59 labels"):
        fashion_mnist(tmp_path, val_size=10, checksums=sums)


def test_wrong_image_shape_and_label_range_are_input_errors(tmp_path, no_system_copy):
    sums = make_fashion(tmp_path)
    sums["t10k-images-idx3-ubyte"] = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(InputError, match=r"t10k-images-idx3-ubyte.gz: expected N×28×28 uint8 images, got 20×32×32 uint8"):
        fashion_mnist(tmp_path, val_size=10, checksums=sums)
    sums = make_fashion(tmp_path)
    sums["t10k-labels-idx1-ubyte"] = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(20, 10, np.uint8))
    with pytest.raises(InputError, match="expected labels 0–9, found 10"):
        fashion_mnist(tmp_path, val_size=10, checksums=sums)


# -- splits -------------------------------------------------------------------------
def test_splits_are_stratified_deterministic_and_fingerprinted(tmp_path, monkeypatch, no_system_copy):
    sums = make_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    splits = fashion_mnist(val_size=10, checksums=sums)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 10, 20)
    assert np.bincount(splits.val.labels).tolist() == [1] * 10
    assert splits.classes == ds.FASHION_MNIST_CLASSES and len(splits.classes) == 10
    image, label = splits.train[0]
    assert image.dtype == np.uint8 and image.shape == (28, 28) and 0 <= label < 10
    # test is the official t10k file, in its order
    assert np.array_equal(splits.test.images, read_idx(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"))
    # train + val partition the official training set
    train_images = read_idx(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    together = np.concatenate([splits.train.images, splits.val.images])
    assert sorted(map(bytes, together)) == sorted(map(bytes, train_images))
    again = fashion_mnist(val_size=10, checksums=sums)
    assert again.fingerprint == splits.fingerprint
    assert np.array_equal(again.val.images, splits.val.images)
    assert fashion_mnist(val_size=10, checksums=sums, seed=1).fingerprint != splits.fingerprint
    assert fashion_mnist(val_size=20, checksums=sums).fingerprint != splits.fingerprint
    with pytest.raises(InputError, match="expected val_size between 1 and 59"):
        fashion_mnist(val_size=60, checksums=sums)
    with pytest.raises(InputError, match=r"at least 31 images per class .* train/val at val_size=59 \(of 60\), but 'T-shirt/top' has 6"):
        fashion_mnist(val_size=59, checksums=sums)


def test_uncompressed_files_read_the_same_and_fingerprint_the_same(tmp_path, no_system_copy):
    gz_sums = make_fashion(tmp_path / "gz", gz=True)
    raw_sums = make_fashion(tmp_path / "raw", gz=False)
    assert gz_sums == raw_sums  # the pin is over the IDX bytes, whatever the wrapping
    a = fashion_mnist(tmp_path / "gz", val_size=10, checksums=gz_sums)
    b = fashion_mnist(tmp_path / "raw", val_size=10, checksums=raw_sums)
    assert a.fingerprint == b.fingerprint and np.array_equal(a.train.images, b.train.images)


def test_an_explicit_root_without_the_files_says_which_are_missing(tmp_path, no_system_copy):
    make_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="expected the Fashion-MNIST IDX files t10k-labels-idx1-ubyte"):
        fashion_mnist(tmp_path)


# -- look-up order and checksums ------------------------------------------------------
def test_lookup_order_is_zoo_data_then_debian_then_cache(tmp_path, monkeypatch, isolated_zoo_home):
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    data, system, cache = tmp_path / "data", tmp_path / "system", isolated_zoo_home / "datasets" / "fashion-mnist"
    sums = {"data": make_fashion(data / "fashion-mnist", seed=1), "system": make_fashion(system, seed=2),
            "cache": make_fashion(cache, seed=3)}
    monkeypatch.setattr(ds, "FASHION_MNIST_SYSTEM_DIRS", [system])
    monkeypatch.setenv("ZOO_DATA", str(data))
    assert [folder for _, folder in ds.fashion_mnist_locations()] == [data / "fashion-mnist", system, cache]
    assert fashion_mnist(val_size=10, checksums=sums["data"]).source == str(data / "fashion-mnist")
    # an incomplete ZOO_DATA folder is passed over (with a warning), not half used
    (data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    assert fashion_mnist(val_size=10, checksums=sums["system"]).source == str(system)
    monkeypatch.delenv("ZOO_DATA")
    assert fashion_mnist(val_size=10, checksums=sums["system"]).source == str(system)
    monkeypatch.setattr(ds, "FASHION_MNIST_SYSTEM_DIRS", [tmp_path / "absent"])
    assert fashion_mnist(val_size=10, checksums=sums["cache"]).source == str(cache)


def test_the_debian_location_is_the_one_dpkg_lists():
    assert ds.FASHION_MNIST_SYSTEM_DIRS == [Path("/usr/share/datasets/fashion-mnist")]


def test_a_wrong_checksum_names_the_file_and_both_hashes(tmp_path, no_system_copy):
    sums = make_fashion(tmp_path)
    # The default pins are the real files' hashes: look-alike files fail them.
    with pytest.raises(WeightsIntegrityError) as info:
        fashion_mnist(tmp_path, val_size=10)
    err = info.value
    assert isinstance(err, DataIntegrityError)
    assert err.path == str(tmp_path / "train-images-idx3-ubyte.gz")
    assert err.expected == ds.FASHION_MNIST_SHA256["train-images-idx3-ubyte"]
    assert err.actual == sums["train-images-idx3-ubyte"]
    message = str(err)
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in message and err.expected in message and err.actual in message
    assert "hashed after decompression" in message
    # checksums=None accepts look-alike data
    assert len(fashion_mnist(tmp_path, val_size=10, checksums=None).train) == 50


def test_offline_without_the_files_says_what_to_fetch_and_where(tmp_path, monkeypatch, no_system_copy, isolated_zoo_home):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        fashion_mnist()
    message = str(info.value)
    for stem in ds.FASHION_MNIST_FILES:
        assert f"{stem}.gz" in message
    assert str(isolated_zoo_home / "datasets" / "fashion-mnist") in message
    assert ds.FASHION_MNIST_MIRRORS[0] in message and "dataset-fashion-mnist" in message
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    with pytest.raises(OfflineError, match=str(tmp_path / "data" / "fashion-mnist")):
        fashion_mnist()


def test_download_false_without_the_files_is_an_input_error(no_system_copy):
    with pytest.raises(InputError, match="expected Fashion-MNIST in one of"):
        fashion_mnist(download=False)


# -- downloads ------------------------------------------------------------------------
class _Server:
    """A loopback HTTP server serving ``files`` (name → bytes) under /good/; /bad/ answers 404."""

    def __init__(self, files: dict[str, bytes]):
        server = self
        self.files, self.gets = files, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.gets.append(self.path)
                data = server.files.get(self.path.removeprefix("/good/")) if self.path.startswith("/good/") else None
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch, no_system_copy):
    source = tmp_path / "upstream"
    sums = make_fashion(source)
    server = _Server({p.name: p.read_bytes() for p in source.iterdir()})
    monkeypatch.setattr(ds, "FASHION_MNIST_MIRRORS", [f"{server.url}/bad/", f"{server.url}/good/"])
    yield server, sums
    server.close()


def test_download_goes_through_the_mirrors_into_the_zoo_cache(served, isolated_zoo_home):
    server, sums = served
    splits = fashion_mnist(val_size=10, checksums=sums)
    target = isolated_zoo_home / "datasets" / "fashion-mnist"
    assert splits.source == str(target)
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(f"{s}.gz" for s in ds.FASHION_MNIST_FILES)
    assert not list(target.glob("*.part"))
    assert server.gets.count("/bad/train-images-idx3-ubyte.gz") == 1 and server.gets.count("/good/train-images-idx3-ubyte.gz") == 1
    server.close()  # a second load needs no network
    assert fashion_mnist(val_size=10, checksums=sums).fingerprint == splits.fingerprint


def test_download_lands_in_zoo_data_when_set_and_fetches_only_missing_files(served, tmp_path, monkeypatch):
    server, sums = served
    target = tmp_path / "data" / "fashion-mnist"
    target.mkdir(parents=True)
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes((tmp_path / "upstream" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    assert fashion_mnist(val_size=10, checksums=sums).source == str(target)
    assert "/good/t10k-labels-idx1-ubyte.gz" not in server.gets
    assert all((target / f"{s}.gz").is_file() for s in ds.FASHION_MNIST_FILES)


def test_downloads_go_through_the_zoo_store_pinned_by_content(served, isolated_zoo_home, monkeypatch):
    from zoo import cache

    server, sums = served
    calls, real = [], cache.fetch
    monkeypatch.setattr(cache, "fetch", lambda wf, **kw: calls.append((wf, kw)) or real(wf, **kw))
    fashion_mnist(val_size=10, checksums=sums)
    target = isolated_zoo_home / "datasets" / "fashion-mnist"
    assert [(wf.name, wf.digest, wf.sources, kw["dest"]) for wf, kw in calls] == [
        (f"{stem}.gz", f"gunzip-sha256:{sums[stem]}", tuple(m + f"{stem}.gz" for m in ds.FASHION_MNIST_MIRRORS),
         target / f"{stem}.gz") for stem in ds.FASHION_MNIST_FILES]
    assert all((isolated_zoo_home / "locks" / f"gunzip-sha256-{sums[stem]}.lock").exists() for stem in sums)


def test_a_download_with_the_wrong_checksum_fails_and_leaves_nothing(served, isolated_zoo_home):
    server, sums = served
    wrong = dict(sums, **{"train-labels-idx1-ubyte": "0" * 64})
    with pytest.raises(WeightsIntegrityError) as info:
        fashion_mnist(val_size=10, checksums=wrong)
    assert info.value.path == f"{server.url}/good/train-labels-idx1-ubyte.gz"
    assert info.value.expected == "0" * 64 and info.value.actual == sums["train-labels-idx1-ubyte"]
    target = isolated_zoo_home / "datasets" / "fashion-mnist"
    assert not (target / "train-labels-idx1-ubyte.gz").exists() and not list(target.glob("*.part"))


def test_a_download_that_no_mirror_has_says_where_to_put_the_file(served, isolated_zoo_home):
    server, sums = served
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(Exception, match=r"could not download t10k-images-idx3-ubyte.gz: .*404.*put the file in") as info:
        fashion_mnist(val_size=10, checksums=sums)
    assert type(info.value).__name__ == "DownloadError"
    assert str(isolated_zoo_home / "datasets" / "fashion-mnist") in str(info.value)


# -- the registered dataset and the real files -----------------------------------------
def test_fashion_mnist_is_registered_with_its_card():
    from zoo.registry import get_registry

    spec = get_registry().dataset("vision/fashion-mnist")
    assert spec.loader == "vision.datasets:fashion_mnist" and spec.task == "image-classification"
    assert spec.card["license"] == "MIT" and "zalandoresearch/fashion-mnist" in spec.card["source"]
    assert list(spec.card["classes"]) == ds.FASHION_MNIST_CLASSES


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not all((DEBIAN / f"{stem}.gz").is_file() for stem in ds.FASHION_MNIST_FILES),
    reason="Debian's dataset-fashion-mnist is not installed (apt install dataset-fashion-mnist)",
)
def test_the_real_debian_files_read_to_the_official_splits(monkeypatch):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    splits = fashion_mnist()  # pinned checksums, found through the look-up
    assert splits.source == str(DEBIAN)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    assert splits.train.images.shape == (55000, 28, 28) and splits.train.images.dtype == np.uint8
    assert np.bincount(splits.val.labels).tolist() == [500] * 10
    assert np.bincount(splits.test.labels).tolist() == [1000] * 10
    assert splits.fingerprint == "e04f48916e9a29e6555e7752974cb38df8d2727362dc7154d648a478e076618d"
