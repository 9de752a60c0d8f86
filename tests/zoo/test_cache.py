"""The weights cache: sources, integrity, offline mode, locking, pickle refusal and conversion."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo import cache, sources
from zoo.errors import DownloadError, InputError, OfflineError, UnsafeFormatError, WeightsIntegrityError
from zoo.registry import WeightFile

REPO_ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safetensors_bytes(tmp_path: Path, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    path = tmp_path / f"w{seed}.safetensors"
    save_file({"w": torch.randn(4, 3, generator=g), "b": torch.arange(3.0)}, str(path))
    return path.read_bytes()


def write_source(tmp_path: Path, name: str, data: bytes, age_s: float = 0) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age_s:  # an old mtime: only the blob's fresh ctime then keeps the stat shortcut racy
        old = time.time_ns() - int(age_s * 1e9)
        os.utime(path, ns=(old, old))
    return path


def store_files(home: Path) -> list[Path]:
    root = home / "blobs" / "sha256"
    return sorted(root.iterdir()) if root.is_dir() else []


def trusted_fetch(wf: WeightFile, monkeypatch, **kwargs) -> Path:
    """Fetch ``wf`` until its stat is trusted: a racy window of 50 ms (above a kernel tick) instead of 2 s."""
    monkeypatch.setattr(cache, "_RACY_NS", 50_000_000)
    cache.fetch(wf, **kwargs)
    time.sleep(0.06)
    return cache.fetch(wf, **kwargs)  # rehashed once more, now long after the blob's ctime


def part_files(home: Path) -> list[Path]:
    return sorted((home / "tmp").glob("*.part")) if (home / "tmp").is_dir() else []


# -- settings -------------------------------------------------------------------
def test_zoo_home_and_offline_read_env_each_call(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "a"))
    assert cache.zoo_home() == tmp_path / "a"
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "b"))
    assert cache.zoo_home() == tmp_path / "b"
    for value, expected in [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("", False)]:
        monkeypatch.setenv("ZOO_OFFLINE", value)
        assert cache.is_offline() is expected
    monkeypatch.delenv("ZOO_OFFLINE")
    assert cache.is_offline() is False  # HF_HUB_OFFLINE (set by conftest) does not count


def test_sha256_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc" * 1_000_000)
    assert cache.sha256_file(path) == sha(b"abc" * 1_000_000)


# -- 1. package and local sources ---------------------------------------------------------
def test_local_source_is_stored_and_second_fetch_does_not_copy(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    src = write_source(tmp_path, "tiny.safetensors", data)
    wf = WeightFile("tiny.safetensors", sha(data), str(src))

    path = cache.fetch(wf, model_id="toy/tiny.test")
    assert path == isolated_zoo_home / "blobs" / "sha256" / sha(data)
    assert path.read_bytes() == data
    assert cache.cached_path(wf) == path
    assert not part_files(isolated_zoo_home)

    def no_copy(*args, **kwargs):
        raise AssertionError("second fetch copied the source again")

    monkeypatch.setattr(sources, "copy_file", no_copy)
    assert cache.fetch(wf) == path
    assert cache.fetch(WeightFile("tiny.safetensors", sha(data), src.as_uri())) == path  # file:// too


def test_package_source_is_copied_into_the_store(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path, seed=1)
    pkg = tmp_path / "pkgs" / "fakeweightspkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "weights" / "net.safetensors").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    wf = WeightFile("net.safetensors", sha(data), "package://fakeweightspkg/weights/net.safetensors")

    path = cache.fetch(wf)
    assert path.parent == isolated_zoo_home / "blobs" / "sha256"
    assert path.read_bytes() == data
    missing = WeightFile("nope.safetensors", "d" * 64, "package://fakeweightspkg/weights/nope.safetensors")
    with pytest.raises(DownloadError, match="nope.safetensors"):
        cache.fetch(missing)


def test_trusted_stat_skips_rehash_and_index_lists_model(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    src = write_source(tmp_path, "old.safetensors", data, age_s=3600)
    wf = WeightFile("old.safetensors", sha(data), str(src))
    path = trusted_fetch(wf, monkeypatch, model_id="toy/old.test")

    calls = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or real(p))
    assert cache.fetch(wf, model_id="toy/old.test") == path
    assert calls == []  # stat matched the verified record: no rehash

    [entry] = cache.list_entries()
    assert entry["sha256"] == sha(data) and entry["size"] == len(data) and entry["path"] == str(path)
    assert entry["refs"] == [{"name": "old.safetensors", "source": str(src), "model_id": "toy/old.test"}]


# -- 2. hash mismatch at the source --------------------------------------------------------
def test_source_hash_mismatch_raises_and_stores_nothing(tmp_path, isolated_zoo_home):
    data = safetensors_bytes(tmp_path)
    src = write_source(tmp_path, "tampered.safetensors", data + b" ")
    wf = WeightFile("tampered.safetensors", sha(data), str(src))

    with pytest.raises(WeightsIntegrityError) as err:
        cache.fetch(wf)
    message = str(err.value)
    assert "tampered.safetensors" in message and sha(data) in message and sha(data + b" ") in message
    assert store_files(isolated_zoo_home) == [] and cache.cached_path(wf) is None
    assert Path(err.value.moved_to).parent == isolated_zoo_home / "quarantine"
    assert src.read_bytes() == data + b" "  # the user's own file is left alone


# -- 3. a cached blob corrupted on disk ------------------------------------------------------
def corrupt(path: Path) -> None:
    with open(path, "r+b") as f:  # same size, same inode: only the mtime betrays it
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))


@pytest.mark.parametrize("age_s", [3600, 0], ids=["trusted-stat", "racy-stat"])
def test_corrupted_blob_is_quarantined(tmp_path, isolated_zoo_home, age_s):
    data = safetensors_bytes(tmp_path)
    src = write_source(tmp_path, "bitrot.safetensors", data, age_s=age_s)
    wf = WeightFile("bitrot.safetensors", sha(data), str(src))
    path = cache.fetch(wf)
    corrupt(path)
    actual = cache.sha256_file(path)

    with pytest.raises(WeightsIntegrityError) as err:
        cache.fetch(wf)
    message = str(err.value)
    assert "bitrot.safetensors" in message and sha(data) in message and actual in message
    moved = Path(err.value.moved_to)
    assert moved.parent == isolated_zoo_home / "quarantine" and moved.is_file()
    assert not path.exists()


def test_verify_rehashes_and_reports_corruption(tmp_path, isolated_zoo_home):
    good, bad = safetensors_bytes(tmp_path, 0), safetensors_bytes(tmp_path, 1)
    wf_good = WeightFile("good.safetensors", sha(good), str(write_source(tmp_path, "good.safetensors", good, 3600)))
    wf_bad = WeightFile("bad.safetensors", sha(bad), str(write_source(tmp_path, "bad.safetensors", bad, 3600)))
    cache.fetch(wf_good)
    corrupt(cache.fetch(wf_bad))

    rows = {row["sha256"]: row for row in cache.verify()}
    assert rows[sha(good)]["ok"] is True and rows[sha(good)]["actual"] == sha(good)
    assert rows[sha(bad)]["ok"] is False and rows[sha(bad)]["actual"] != sha(bad)
    assert Path(rows[sha(bad)]["moved_to"]).parent == isolated_zoo_home / "quarantine"
    assert [p.name for p in store_files(isolated_zoo_home)] == [sha(good)]


def flip_first_byte_keep_mtime(path: Path) -> None:
    """Same size, same inode, mtime set back: only ctime (which utime also moves) betrays the edit."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    with open(path, "r+b") as f:
        f.write(data[:1])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_edit_with_restored_mtime_is_caught_on_fetch(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    wf = WeightFile("restored.safetensors", sha(data), str(write_source(tmp_path, "restored.safetensors", data, 3600)))
    path = trusted_fetch(wf, monkeypatch)
    flip_first_byte_keep_mtime(path)

    with pytest.raises(WeightsIntegrityError) as err:
        cache.fetch(wf)
    assert sha(data) in str(err.value) and Path(err.value.moved_to).parent == isolated_zoo_home / "quarantine"
    assert cache.fetch(wf).read_bytes() == data  # fetched again from the source


def test_chmod_or_touch_only_costs_a_rehash(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    wf = WeightFile("touched.safetensors", sha(data), str(write_source(tmp_path, "touched.safetensors", data, 3600)))
    path = trusted_fetch(wf, monkeypatch)
    os.chmod(path, 0o444)
    calls = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or real(p))
    assert cache.fetch(wf) == path and calls == [path]


def make_non_file(path: Path, kind: str, target: Path) -> None:
    path.unlink()
    if kind == "directory":
        path.mkdir()
        (path / "inside").write_bytes(b"x")
    elif kind == "symlink":  # even to the right bytes: the store holds files, not pointers elsewhere
        path.symlink_to(target)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_blob_that_is_not_a_file_is_corrupt_for_verify_and_fetch(tmp_path, isolated_zoo_home, monkeypatch, kind):
    data = safetensors_bytes(tmp_path)
    src = write_source(tmp_path, "odd.safetensors", data, 3600)
    wf = WeightFile("odd.safetensors", sha(data), str(src))
    path = trusted_fetch(wf, monkeypatch)

    make_non_file(path, kind, src)
    [row] = cache.verify()
    assert row["ok"] is False and row["actual"] == f"a {kind}, not a file"
    assert Path(row["moved_to"]).parent == isolated_zoo_home / "quarantine" and not os.path.lexists(path)
    assert cache.fetch(wf).read_bytes() == data  # missing now: fetched again

    make_non_file(path, kind, src)
    assert cache.cached_path(wf) is None and [e["sha256"] for e in cache.list_entries()] == [sha(data)]
    with pytest.raises(WeightsIntegrityError, match=f"got a {kind}, not a file"):
        cache.fetch(wf)
    assert cache.fetch(wf).read_bytes() == data
    assert src.read_bytes() == data  # a symlink's target is never written to


MALFORMED_RECORDS = [b"[]", b"[1, 2]", b'"text"', b"null", b"42", b"{", b"\xff\xfe{}", b"[" * 100_000,
                     b'{"size": "big", "inode": [], "mtime_ns": null, "ctime_ns": 1.5, "verified_at_ns": "x"}']


def short_id(content: bytes) -> str:
    return repr(content[:24])


@pytest.mark.parametrize("content", MALFORMED_RECORDS, ids=short_id)
def test_malformed_verified_record_means_rehash(tmp_path, isolated_zoo_home, monkeypatch, content):
    data = safetensors_bytes(tmp_path)
    wf = WeightFile("rec.safetensors", sha(data), str(write_source(tmp_path, "rec.safetensors", data, 3600)))
    path = trusted_fetch(wf, monkeypatch)
    record = isolated_zoo_home / "verified" / f"{sha(data)}.json"
    record.write_bytes(content)

    calls = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or real(p))
    assert cache.fetch(wf) == path and calls == [path]
    assert isinstance(json.loads(record.read_text()), dict)  # rewritten
    assert cache.verify()[0]["ok"] is True


def test_verified_record_that_is_a_directory_is_replaced(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    wf = WeightFile("rec.safetensors", sha(data), str(write_source(tmp_path, "rec.safetensors", data, 3600)))
    path = trusted_fetch(wf, monkeypatch)
    record = isolated_zoo_home / "verified" / f"{sha(data)}.json"
    record.unlink()
    record.mkdir()
    assert cache.fetch(wf) == path and record.is_file()


@pytest.mark.parametrize("content", [*MALFORMED_RECORDS, b'{"not-a-hash": [], "%s": {"name": 1}}'], ids=short_id)
def test_malformed_index_is_an_empty_index(tmp_path, isolated_zoo_home, content):
    data = safetensors_bytes(tmp_path)
    wf = WeightFile("idx.safetensors", sha(data), str(write_source(tmp_path, "idx.safetensors", data)))
    path = cache.fetch(wf, model_id="toy/idx.test")
    (isolated_zoo_home / "index.json").write_bytes(content.replace(b"%s", sha(data).encode()))

    assert [(e["path"], e["refs"]) for e in cache.list_entries()] == [(str(path), [])]
    assert cache.fetch(wf, model_id="toy/idx.test") == path  # and the index is repaired
    [entry] = cache.list_entries()
    assert entry["refs"] == [{"name": "idx.safetensors", "source": str(wf.source), "model_id": "toy/idx.test"}]
    corrupt(path)
    assert cache.verify()[0]["ok"] is False


@pytest.mark.parametrize("content", [*MALFORMED_RECORDS, b'{"sha256": "../../../../etc/hostname"}',
                                     b'{"sha256": ["a"]}', b'{"sha256": "%s"}' % (b"0" * 64)], ids=short_id)
def test_malformed_conversion_record_means_convert_again(tmp_path, isolated_zoo_home, content):
    state = {"layer.weight": torch.randn(3, 2)}
    src = tmp_path / "legacy.pth"
    torch.save(state, src)
    wf = WeightFile("legacy.pth", sha(src.read_bytes()), str(src), format="torch-pickle")
    cache.fetch(wf)
    record = isolated_zoo_home / "converted" / f"{wf.sha256}.json"
    record.write_bytes(content)

    assert cache.cached_path(wf) is None
    converted = cache.fetch(wf)  # safetensors orders header metadata at random: maybe another blob
    assert torch.equal(load_file(str(converted))["layer.weight"], state["layer.weight"])
    assert json.loads(record.read_text())["sha256"] == converted.name and cache.cached_path(wf) == converted


# -- 4. offline ---------------------------------------------------------------------------
def test_offline_remote_source_raises_without_connecting(tmp_path, monkeypatch):
    connects = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connects.append(addr) or real_connect(self, addr))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    wf = WeightFile("r.safetensors", "a" * 64, "https://example.com/r.safetensors")

    with pytest.raises(OfflineError) as err:
        cache.fetch(wf, model_id="toy/r.test")
    assert "zoo fetch toy/r.test" in str(err.value)
    assert connects == []

    # Local files still work offline.
    data = safetensors_bytes(tmp_path)
    local = WeightFile("l.safetensors", sha(data), str(write_source(tmp_path, "l.safetensors", data)))
    assert cache.fetch(local).read_bytes() == data
    assert connects == []


def test_offline_uses_the_store(tmp_path, server, monkeypatch):
    data = safetensors_bytes(tmp_path)
    server.routes["/w.safetensors"] = data
    wf = WeightFile("w.safetensors", sha(data), server.url("/w.safetensors"))
    path = cache.fetch(wf)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert cache.fetch(wf) == path and server.gets == 1


# -- 5. downloads ----------------------------------------------------------------------------
def test_download_with_wrong_hash_is_quarantined(tmp_path, isolated_zoo_home, server):
    data = safetensors_bytes(tmp_path)
    server.routes["/w.safetensors"] = data
    wf = WeightFile("w.safetensors", sha(b"something else"), server.url("/w.safetensors"))
    with pytest.raises(WeightsIntegrityError, match=sha(data)):
        cache.fetch(wf)
    assert store_files(isolated_zoo_home) == [] and len(list((isolated_zoo_home / "quarantine").iterdir())) == 1


# -- 6. two processes, one download ---------------------------------------------------------------
def test_two_processes_download_once(tmp_path, isolated_zoo_home, server):
    data = safetensors_bytes(tmp_path)
    server.routes["/big.safetensors"] = data
    server.mode = "slow"
    script = (
        "import sys; from zoo.cache import fetch; from zoo.registry import WeightFile; "
        "print(fetch(WeightFile('big.safetensors', sys.argv[1], sys.argv[2])))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, sha(data), server.url("/big.safetensors")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (out, errout) in zip(procs, outputs):
        assert p.returncode == 0, errout
    assert {out.strip() for out, _ in outputs} == {str(isolated_zoo_home / "blobs" / "sha256" / sha(data))}
    assert server.gets == 1


# -- 7. pickles ----------------------------------------------------------------------------------
class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickle_declared_safetensors_is_refused_unopened(tmp_path, isolated_zoo_home):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"w": Evil(marker)}, protocol=4)
    wf = WeightFile("evil.safetensors", sha(data), str(write_source(tmp_path, "evil.safetensors", data)))
    with pytest.raises(UnsafeFormatError) as err:
        cache.fetch(wf)
    assert "evil.safetensors" in str(err.value) and "pickle can execute code" in str(err.value).lower()
    assert not marker.exists() and store_files(isolated_zoo_home) == []

    zipped = tmp_path / "zipped.pt"
    torch.save({"w": torch.ones(2)}, zipped)
    data = zipped.read_bytes()
    with pytest.raises(UnsafeFormatError, match="zip"):
        cache.fetch(WeightFile("zipped.pt", sha(data), str(zipped)))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_pickle_is_converted_once(tmp_path, isolated_zoo_home, monkeypatch, zip_format):
    state = {"layer.weight": torch.randn(3, 2), "layer.bias": torch.arange(3, dtype=torch.float64)}
    src = tmp_path / "legacy.pth"
    torch.save({"state_dict": state, "epoch": 3}, src, _use_new_zipfile_serialization=zip_format)
    wf = WeightFile("legacy.pth", sha(src.read_bytes()), str(src), format="torch-pickle")

    path = cache.fetch(wf, model_id="toy/legacy.test")
    loaded = load_file(str(path))
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype for k in state)
    record = json.loads((isolated_zoo_home / "converted" / f"{wf.sha256}.json").read_text())
    assert record["sha256"] == path.name == cache.sha256_file(path)
    assert cache.cached_path(wf) == path

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load called on a second fetch")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert cache.fetch(wf) == path


def prefixed_keys(state):
    """A key remap for the test below: ``layer.*`` -> ``net.layer.*``."""
    return {f"net.{k}": v for k, v in state.items()}


def upper_keys(state):
    return {k.upper(): v for k, v in state.items()}


def not_a_state_dict(state):
    return ["not", "a", "dict"]


def test_torch_pickle_remap_is_applied_once_and_keyed_by_remap(tmp_path, isolated_zoo_home, monkeypatch):
    state = {"layer.weight": torch.randn(3, 2), "layer.bias": torch.arange(3.0)}
    src = tmp_path / "legacy.pth"
    torch.save(state, src)
    digest = sha(src.read_bytes())
    plain = WeightFile("legacy.pth", digest, str(src), format="torch-pickle")
    mapped = WeightFile("legacy.pth", digest, str(src), format="torch-pickle", remap=f"{__name__}:prefixed_keys")

    path = cache.fetch(mapped)
    loaded = load_file(str(path))
    assert sorted(loaded) == ["net.layer.bias", "net.layer.weight"]
    assert all(torch.equal(loaded[f"net.{k}"], v) for k, v in state.items())
    assert cache.cached_path(mapped) == path and cache.cached_path(plain) is None  # keyed by remap too
    assert sorted(load_file(str(cache.fetch(plain)))) == ["layer.bias", "layer.weight"]

    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(1) or real_load(*a, **k))
    assert cache.fetch(mapped) == path and calls == []  # converted once
    changed = WeightFile("legacy.pth", digest, str(src), format="torch-pickle", remap=f"{__name__}:upper_keys")
    assert sorted(load_file(str(cache.fetch(changed)))) == ["LAYER.BIAS", "LAYER.WEIGHT"] and calls == [1]

    with pytest.raises(InputError, match="must return a state dict"):
        cache.fetch(WeightFile("legacy.pth", digest, str(src), format="torch-pickle", remap=f"{__name__}:not_a_state_dict"))
    with pytest.raises(InputError, match="remap 'no_such_module_xyz:f' failed"):
        cache.fetch(WeightFile("legacy.pth", digest, str(src), format="torch-pickle", remap="no_such_module_xyz:f"))
    with pytest.raises(ValueError, match="torch-pickle"):
        WeightFile("w.safetensors", digest, str(src), remap=f"{__name__}:upper_keys")
    with pytest.raises(ValueError, match="module:function"):
        WeightFile("legacy.pth", digest, str(src), format="torch-pickle", remap="no_colon")


def test_torch_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": Evil(marker)}, src)
    wf = WeightFile("evil.pth", sha(src.read_bytes()), str(src), format="torch-pickle")
    with pytest.raises(UnsafeFormatError, match="weights_only"):
        cache.fetch(wf)
    assert not marker.exists()


# -- 8. Hugging Face, offline -------------------------------------------------------------------------
def make_hf_cache(root: Path, repo: str, filename: str, data: bytes, commit: str) -> None:
    """The layout huggingface_hub's cache uses: blobs/, snapshots/<commit>/ symlinks, refs/main."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    etag = sha(data)
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "blobs" / etag).write_bytes(data)
    pointer = repo_dir / "snapshots" / commit / filename
    pointer.parent.mkdir(parents=True)
    pointer.symlink_to(os.path.relpath(repo_dir / "blobs" / etag, pointer.parent))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_hf_source_offline_from_hf_cache(tmp_path, isolated_zoo_home, monkeypatch):
    data = safetensors_bytes(tmp_path)
    commit = "0123456789abcdef0123456789abcdef01234567"
    make_hf_cache(tmp_path / "hf_cache", "org/tiny-net", "weights/model.safetensors", data, commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")

    wf = WeightFile("model.safetensors", sha(data), "hf://org/tiny-net/weights/model.safetensors")
    path = cache.fetch(wf)
    assert path.parent == isolated_zoo_home / "blobs" / "sha256" and path.read_bytes() == data
    cache.clear()
    pinned = WeightFile("model.safetensors", sha(data), f"hf://org/tiny-net/weights/model.safetensors@{commit}")
    assert cache.fetch(pinned).read_bytes() == data

    absent = WeightFile("other.safetensors", "c" * 64, "hf://org/tiny-net/other.safetensors")
    with pytest.raises(OfflineError, match="zoo fetch toy/tiny.hf"):
        cache.fetch(absent, model_id="toy/tiny.hf")
    with pytest.raises(InputError, match="hf://ORG/REPO"):
        cache.fetch(WeightFile("x", "c" * 64, "hf://org-only/x"))


# -- 9. clear ---------------------------------------------------------------------------------------
def test_clear_empties_the_store(tmp_path, isolated_zoo_home, server):
    data = safetensors_bytes(tmp_path)
    server.routes["/w.safetensors"] = data
    wf = WeightFile("w.safetensors", sha(data), server.url("/w.safetensors"))
    cache.fetch(wf)
    assert cache.list_entries()

    freed = cache.clear()
    assert freed >= len(data)
    assert cache.list_entries() == [] and cache.cached_path(wf) is None
    for part in ("blobs", "verified", "converted", "tmp", "locks", "quarantine", "index.json"):
        assert not (isolated_zoo_home / part).exists()
    assert cache.fetch(wf).read_bytes() == data and server.gets == 2
