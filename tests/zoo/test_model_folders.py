"""Model folders are untrusted input: what ``zoo.load(DIR)`` / ``zoo.info(DIR)`` accept, and where ``save`` writes.

On a folder of the toy model, and one with a task file beside the weights (``vocab.json``, pinned as a
tokenizer is); how a task's own files are saved and read back is tested with the nlp tests (test_model_folders.py)."""
import json
import shutil
import sys

import pytest
import torch

import zoo
from tests.zoo import toy
from zoo.cache import sha256_file
from zoo.errors import InputError, UnsafeFormatError, WeightsIntegrityError, ZooError

pytestmark = pytest.mark.usefixtures("toy_registry")  # a toy folder names the toy architecture


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    """A saved toy MLP (weights + card only)."""
    with toy.registered():
        return zoo.load(toy.MODEL_ID, device="cpu").save(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture(scope="module")
def file_dir(toy_dir, tmp_path_factory):
    """The toy folder with one more pinned file, ``vocab.json``, as a task's tokenizer is pinned."""
    folder = shutil.copytree(toy_dir, tmp_path_factory.mktemp("file") / "model")
    (folder / "vocab.json").write_text(json.dumps(toy.LABELS))
    edit_card(folder, lambda card: pin(card, "vocab.json", folder / "vocab.json"))
    return folder


def copy_of(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target, symlinks=True)
    return target


def edit_card(folder, edit):
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(card))


def pin(card, name, path, **meta):
    card["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size, "source": "local",
                           "format": "raw", **meta}


@pytest.fixture
def no_sockets(monkeypatch):
    """Fails the test on any connection or name lookup (an audit hook sees them all)."""
    opened = []
    watching = [True]

    def hook(event, args):
        if watching and event in ("socket.connect", "socket.getaddrinfo"):
            opened.append((event, args))

    sys.addaudithook(hook)
    yield opened
    watching.clear()  # audit hooks cannot be removed: switch this one off
    assert not opened, f"opened sockets: {opened}"


def test_a_pickle_named_with_a_source_elsewhere_is_refused_not_unpickled(file_dir, tmp_path, monkeypatch):
    folder = copy_of(file_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere" / "x.pkl"
    elsewhere.parent.mkdir()
    torch.save({"a": torch.zeros(1)}, elsewhere)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called on a model folder's file")

    monkeypatch.setattr(torch, "load", refuse)
    edit_card(folder, lambda card: pin(card, "vocab.json", elsewhere, source=str(elsewhere), format="torch-pickle"))
    with pytest.raises(InputError, match="vocab.json.*source '/.*x.pkl'"):
        zoo.load(folder, device="cpu")
    edit_card(folder, lambda card: card["files"]["vocab.json"].update(source="local"))
    with pytest.raises(InputError, match="format 'torch-pickle'.*never unpickles"):
        zoo.info(str(folder))


@pytest.mark.parametrize("source", ["http://127.0.0.1:9/tok.json", "hf://org/repo/tok.json", "package://toy/x.json"])
def test_a_file_with_a_remote_source_is_refused_without_a_connection(file_dir, tmp_path, no_sockets, source):
    folder = copy_of(file_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["vocab.json"].update(source=source))
    with pytest.raises(InputError, match="must be in the folder"):
        zoo.load(folder, device="cpu")


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/file.txt", "..", "", "a\\..\\b", "x" * 300])
def test_names_outside_the_folder_are_refused_before_reading(toy_dir, tmp_path, name):
    folder = copy_of(toy_dir, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    edit_card(folder, lambda card: pin(card, name, outside))
    for read in (lambda: zoo.load(folder, device="cpu"), lambda: zoo.info(str(folder))):
        with pytest.raises(InputError, match="plain file name inside the model folder"):
            read()


def test_symlinks_leaving_the_folder_are_refused(file_dir, tmp_path):
    folder = copy_of(file_dir, tmp_path)
    outside = tmp_path / "vocab.json"
    shutil.move(folder / "vocab.json", outside)
    (folder / "vocab.json").symlink_to(outside)
    with pytest.raises(InputError, match="points outside its model folder"):
        zoo.load(folder, device="cpu")
    shutil.move(folder / "card.json", tmp_path / "card.json")
    (folder / "card.json").symlink_to(tmp_path / "card.json")  # the card itself, too
    with pytest.raises(InputError, match="card.json points outside its model folder"):
        zoo.info(str(folder))
    (folder / "card.json").unlink()
    shutil.move(tmp_path / "card.json", folder / "card.json")
    (folder / "vocab.json").unlink()
    shutil.move(outside, folder / "real-vocab.json")
    (folder / "vocab.json").symlink_to("real-vocab.json")  # a link inside the folder is fine
    assert zoo.load(folder, device="cpu").predict(toy.toy_blobs()["test"][0][0])["label"] in toy.LABELS


def test_weights_must_be_the_local_safetensors_file(toy_dir, tmp_path):
    folder = copy_of(toy_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(format="raw"))
    with pytest.raises(InputError, match="format 'raw'.*only safetensors"):
        zoo.load(folder)
    edit_card(folder, lambda card: card["files"].pop("weights.safetensors"))
    with pytest.raises(InputError, match="pins no weights.safetensors"):
        zoo.info(str(folder))


def test_a_tampered_task_file_is_refused(file_dir, tmp_path):
    folder = copy_of(file_dir, tmp_path)
    with open(folder / "vocab.json", "a") as f:
        f.write(" ")
    with pytest.raises(WeightsIntegrityError, match="vocab.json"):
        zoo.load(folder, device="cpu")


@pytest.mark.parametrize("card_json, message", [
    ("[1, 2]", "JSON object, got list"),
    ("{", "not valid UTF-8 JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    ("[" * 100_000, "not valid UTF-8 JSON"),
    ('{"id": "x"}', "lacks required fields"),
])
def test_card_json_that_is_not_a_card(toy_dir, tmp_path, card_json, message):
    folder = copy_of(toy_dir, tmp_path)
    (folder / "card.json").write_bytes(card_json if isinstance(card_json, bytes) else card_json.encode())
    with pytest.raises(InputError, match=message):
        zoo.info(str(folder))


@pytest.mark.parametrize("field, value", [
    ("files", []), ("files", {"weights.safetensors": "abc"}), ("labels", 3), ("labels", [1, 2]),
    ("arch_args", "x"), ("preprocessing", None), ("metrics", [1]), ("params", "many"), ("params", True),
    ("metrics", [{"name": "accuracy", "value": "high", "dataset": "d", "split": "test"}]),
    ("metrics", [{"name": "accuracy", "value": 0.9, "split": "test"}]),
    ("metrics", [{"name": "accuracy", "value": 0.9, "dataset": "d", "split": "test", "ci95": [0.8]}]),
    ("id", 5), ("schema_version", None),
    ("provenance", {"recipe": {"name": "toy-classification", "parals": {}}}),  # found by the fuzz campaign
    ("provenance", {"recipe": {"name": 3, "params": {}}}), ("provenance", {"recipe": []}),
])
def test_card_fields_of_the_wrong_type(toy_dir, tmp_path, field, value):
    folder = copy_of(toy_dir, tmp_path)
    edit_card(folder, lambda card: card.__setitem__(field, value))
    with pytest.raises(InputError, match=f"{field}|files"):
        zoo.load(folder)


def test_a_huge_card_is_refused_without_parsing(toy_dir, tmp_path):
    folder = copy_of(toy_dir, tmp_path)
    (folder / "card.json").write_text('{"description": "' + "x" * (9 << 20) + '"}')
    with pytest.raises(InputError, match="over 8 MiB"):
        zoo.info(str(folder))


@pytest.mark.parametrize("arch_args", [{"num_classes": "ten"}, {"nonsense": 1}, {"num_classes": 5},
                                       {"num_classes": 2**40}, {"hidden": 2**20}, {"num_classes": -1}])
def test_arch_args_that_do_not_build_or_fit_the_weights(toy_dir, tmp_path, arch_args):
    folder = copy_of(toy_dir, tmp_path)
    edit_card(folder, lambda card: card["arch_args"].update(arch_args))
    with pytest.raises(InputError, match="do not fit|does not describe a model") as info:
        zoo.load(folder)
    assert "\n" not in str(info.value)


def repin_weights(folder):
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(
        sha256=sha256_file(folder / "weights.safetensors"), size=(folder / "weights.safetensors").stat().st_size))


def test_pickled_weights_are_refused_as_unsafe(toy_dir, tmp_path, monkeypatch):
    folder = copy_of(toy_dir, tmp_path)
    state = zoo.load(folder).net.state_dict()
    torch.save(state, folder / "weights.safetensors")  # a torch zip archive under the safetensors name
    repin_weights(folder)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    with pytest.raises(UnsafeFormatError, match="never unpickles"):
        zoo.load(folder)
    import pickle

    (folder / "weights.safetensors").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    repin_weights(folder)
    with pytest.raises(UnsafeFormatError, match="Python pickle"):
        zoo.load(folder)


@pytest.mark.parametrize("header", [b'{"a": 1', b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}}',
                                    b'{"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}'])
def test_weights_with_a_bad_safetensors_header_are_an_input_error(toy_dir, tmp_path, header):
    folder = copy_of(toy_dir, tmp_path)
    (folder / "weights.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    repin_weights(folder)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        zoo.load(folder)


def test_every_refusal_is_one_zoo_error_line(toy_dir, tmp_path):
    folder = copy_of(toy_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(sha256=None))
    with pytest.raises(ZooError) as info:
        zoo.load(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model_id", ["x" * 5000, "a\0b", "toy/" + "y" * 300])
def test_ids_that_cannot_be_paths_are_unknown_models(model_id):
    for read in (zoo.load, zoo.info):
        with pytest.raises(ZooError, match="unknown model"):
            read(model_id)
