"""The one store for every pinned file: all of a card's files at once, mirrors, pins other than a
sha256, dataset files placed in their folder, and every file a model needs handed to its adapter."""
from __future__ import annotations

import gzip
import hashlib
import json
import re

import pytest

import zoo
from tests.zoo import toy
from zoo import cache
from zoo.errors import DownloadError, OfflineError, WeightsIntegrityError
from zoo.model import TaskAdapter
from zoo.registry import ModelSpec, TaskSpec, WeightFile

FILES_ID = "toy/mlp.files"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class VocabTask(toy.ToyClassification):
    """A toy task that needs a vocabulary beside its weights, as a text task needs its tokenizer."""

    def __init__(self, card, files=None):
        super().__init__(card, files)
        self.vocab = self.path("vocab.txt").read_text().split()

    def files(self):
        return {"vocab.txt": self.paths["vocab.txt"]}


@pytest.fixture
def files_model(toy_registry, tmp_path):
    """A registered model with two pinned files: its weights and a raw vocabulary."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("low mid high\n")
    weights = toy_registry.model(toy.MODEL_ID).weights[0]
    toy_registry.add(TaskSpec("toy-vocab", f"{__name__}:VocabTask"))
    toy_registry.add(ModelSpec(FILES_ID, task="toy-vocab", architecture="tiny_mlp", arch_args={"num_classes": 3},
                                     weights=(weights, WeightFile("vocab.txt", sha(vocab.read_bytes()), str(vocab),
                                                                  format="raw"))))
    return weights, vocab


def test_load_resolves_all_of_a_cards_files_at_once_into_name_path(files_model, isolated_zoo_home, monkeypatch, tmp_path):
    weights, vocab = files_model
    model = zoo.load(FILES_ID, device="cpu")
    blobs = isolated_zoo_home / "blobs" / "sha256"
    assert model.adapter.paths == {"weights.safetensors": blobs / weights.sha256,
                                   "vocab.txt": blobs / sha(vocab.read_bytes())}
    assert model.adapter.vocab == ["low", "mid", "high"]
    # A fresh network still gets its raw data files, never the weights.
    assert set(zoo.load(FILES_ID, pretrained=False, device="cpu").adapter.paths) == {"vocab.txt"}
    # A saved folder hands its own verified files over, by the same names; the store is not asked.
    folder = model.save(tmp_path / "saved")
    monkeypatch.setattr(cache, "fetch", lambda *a, **k: pytest.fail("a folder's file was fetched from the store"))
    again = zoo.load(folder, device="cpu")
    assert again.adapter.paths == {"weights.safetensors": folder / "weights.safetensors", "vocab.txt": folder / "vocab.txt"}


def test_an_adapter_asking_for_a_file_it_was_not_given_is_an_input_error(toy_registry):
    card = zoo.info(toy.MODEL_ID)
    with pytest.raises(zoo.errors.InputError, match="pins no file 'vocab.txt'"):
        VocabTask(card, {})
    assert TaskAdapter.path(toy.ToyClassification(card, {"a": "b"}), "a") == "b"


def test_mirrors_are_tried_in_order_until_one_delivers(server, isolated_zoo_home, tmp_path):
    data = b"three mirrors, one file\n"
    server.routes["/second/f.txt"] = data
    server.routes["/third/f.txt"] = data
    wf = WeightFile("f.txt", sha(data), server.url("/first/f.txt"), format="raw",
                    mirrors=(server.url("/second/f.txt"), server.url("/third/f.txt")))
    assert cache.fetch(wf).read_bytes() == data
    assert server.paths == ["/first/f.txt", "/second/f.txt"]  # the third was never needed
    # Wrong bytes from a mirror are refused at once: no later mirror is asked to cover them.
    other = b"another file\n"
    server.routes["/second/g.txt"] = b"tampered"
    server.routes["/third/g.txt"] = other
    bad = WeightFile("g.txt", sha(other), server.url("/first/g.txt"), format="raw",
                     mirrors=(server.url("/second/g.txt"), server.url("/third/g.txt")))
    with pytest.raises(WeightsIntegrityError) as info:
        cache.fetch(bad)
    assert info.value.path == server.url("/second/g.txt") and "/third/g.txt" not in server.paths


def test_when_no_mirror_delivers_each_failure_is_named(server, monkeypatch, tmp_path):
    wf = WeightFile("f.txt", "a" * 64, server.url("/a/f.txt"), format="raw", mirrors=(server.url("/b/f.txt"),))
    with pytest.raises(DownloadError, match=r"could not download f\.txt: .*/a/f\.txt.*404.*; .*/b/f\.txt.*404"):
        cache.fetch(wf)
    local = tmp_path / "f.txt"
    local.write_bytes(b"x")
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # offline, with a local mirror that does not have it either
    wf = WeightFile("f.txt", "a" * 64, server.url("/a/f.txt"), format="raw", mirrors=(str(tmp_path / "nope.txt"),))
    with pytest.raises(OfflineError, match=re.escape(f"downloads from {server.url('/a/f.txt')}")):
        cache.fetch(wf, model_id="toy/x.y")


def test_an_md5_pin_is_checked_then_recorded_by_sha256(tmp_path, isolated_zoo_home):
    data = b"a file its publisher pins by md5\n"
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    wf = WeightFile("data.bin", None, str(source), format="raw", digest=f"md5:{hashlib.md5(data).hexdigest()}")
    path = cache.fetch(wf)
    assert path == isolated_zoo_home / "blobs" / "sha256" / sha(data)
    record = isolated_zoo_home / "pins" / f"md5-{hashlib.md5(data).hexdigest()}.json"
    assert json.loads(record.read_text())["sha256"] == sha(data)
    source.unlink()  # recorded: the next fetch needs the source no more
    assert cache.fetch(wf) == path and cache.cached_path(wf) == path
    wrong = WeightFile("other.bin", None, str(tmp_path / "other.bin"), format="raw", digest="md5:" + "0" * 32)
    (tmp_path / "other.bin").write_bytes(data)
    with pytest.raises(WeightsIntegrityError, match="md5 mismatch .*expected 0{32}, got " + hashlib.md5(data).hexdigest()):
        cache.fetch(wrong)


def test_dest_places_a_data_file_in_its_folder_through_the_same_checks(tmp_path, isolated_zoo_home):
    content = b"\x00\x00\x08\x01" + bytes(range(10))
    source = tmp_path / "labels.gz"
    source.write_bytes(gzip.compress(content))
    wf = WeightFile("labels.gz", None, str(tmp_path / "missing.gz"), format="raw", mirrors=(str(source),),
                    digest=f"gunzip-sha256:{sha(content)}")  # pinned by the bytes inside the gzip
    dest = tmp_path / "data" / "labels.gz"
    assert cache.fetch(wf, dest=dest) == dest and dest.read_bytes() == source.read_bytes()
    assert cache.list_entries() == []  # placed in its folder, not in the blob store
    assert sorted(p.name for p in dest.parent.iterdir()) == ["labels.gz"]  # no lock or temp file left there
    wrong = WeightFile("more.gz", None, str(source), format="raw", digest="gunzip-sha256:" + "0" * 64)
    with pytest.raises(WeightsIntegrityError, match=r"sha256 \(of the decompressed bytes\) mismatch"):
        cache.fetch(wrong, dest=tmp_path / "data" / "more.gz")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["labels.gz"]


def test_a_file_in_another_librarys_cache_is_checked_where_it_lies(tmp_path, monkeypatch):
    import time

    data = b"an LFS blob in the Hugging Face cache"
    blob = tmp_path / "hf" / "blobs" / sha(data)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    monkeypatch.setattr(cache, "_RACY_NS", 50_000_000)
    assert cache.verify_in_place(blob, sha(data)) == blob
    time.sleep(0.06)
    cache.verify_in_place(blob, sha(data))  # hashed again, now long after the file's ctime
    calls, real = [], cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or real(p))
    cache.verify_in_place(blob, sha(data))
    assert calls == []  # its stat matched the last full hash, as a store blob's does
    blob.write_bytes(b"tampered in place")
    with pytest.raises(WeightsIntegrityError, match="expected " + sha(data)):
        cache.verify_in_place(blob, sha(data))
    assert blob.read_bytes() == b"tampered in place" and cache.list_entries() == []  # not the store's to move


def test_a_network_pinned_in_parts_loads_from_all_of_them_and_a_shared_key_is_refused(toy_registry, tmp_path):
    import torch
    from safetensors.torch import save_file

    from zoo.errors import InputError
    from zoo.hashing import sha256_file

    state = toy.tiny_mlp().state_dict()

    def part(name: str, prefixes: tuple[str, ...]) -> WeightFile:
        path = tmp_path / name
        save_file({k: v.contiguous() for k, v in state.items() if k.startswith(prefixes)}, str(path))
        return WeightFile(name, sha256_file(path), str(path))

    body, head = part("body.safetensors", ("body.",)), part("head.safetensors", ("head.",))
    toy_registry.add(ModelSpec("toy/mlp.parts", task="toy-classification", architecture="tiny_mlp",
                               arch_args={"num_classes": 3}, weights=(body, head)))
    loaded = zoo.load("toy/mlp.parts", device="cpu").net.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    both = part("both.safetensors", ("body.", "head."))
    toy_registry.add(ModelSpec("toy/mlp.clash", task="toy-classification", architecture="tiny_mlp",
                               arch_args={"num_classes": 3}, weights=(both, head)))
    with pytest.raises(InputError, match=r"head\.safetensors \(.*\) hold keys another weights file .*'head\.bias'"):
        zoo.load("toy/mlp.clash", device="cpu")
