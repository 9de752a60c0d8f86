"""Model folders are untrusted input: what ``zoo.load(DIR)`` / ``zoo.info(DIR)`` accept, and where ``save`` writes."""
import json
import shutil
import sys

import pytest
import torch

import zoo
from tests.nlp.helpers import install_in_hf_cache, make_tiny_bert
from zoo.cache import sha256_file
from zoo.errors import InputError, UnsafeFormatError, WeightsIntegrityError, ZooError

DIGITS_ID = "vision/digits_cnn.sklearn"
HF_REPO = "tiny-org/tiny-bert"


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A saved digits CNN (weights + card only)."""
    return zoo.load(DIGITS_ID, device="cpu").save(tmp_path_factory.mktemp("digits") / "model")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A saved tiny BERT text classifier: weights, card and tokenizer.json."""
    home = tmp_path_factory.mktemp("hf-home")
    install_in_hf_cache(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")), home / "hub", HF_REPO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        model = zoo.load(f"hf:{HF_REPO}", device="cpu")
    return model.save(tmp_path_factory.mktemp("text") / "model")


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


def test_a_pickle_named_with_a_source_elsewhere_is_refused_not_unpickled(text_dir, tmp_path, monkeypatch):
    folder = copy_of(text_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere" / "x.pkl"
    elsewhere.parent.mkdir()
    torch.save({"a": torch.zeros(1)}, elsewhere)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called on a model folder's file")

    monkeypatch.setattr(torch, "load", refuse)
    edit_card(folder, lambda card: pin(card, "tokenizer.json", elsewhere, source=str(elsewhere), format="torch-pickle"))
    with pytest.raises(InputError, match="tokenizer.json.*source '/.*x.pkl'"):
        zoo.load(folder, device="cpu")
    edit_card(folder, lambda card: card["files"]["tokenizer.json"].update(source="local"))
    with pytest.raises(InputError, match="format 'torch-pickle'.*never unpickles"):
        zoo.info(str(folder))


@pytest.mark.parametrize("source", ["http://127.0.0.1:9/tok.json", "hf://org/repo/tok.json", "package://nlp/x.json"])
def test_a_file_with_a_remote_source_is_refused_without_a_connection(text_dir, tmp_path, no_sockets, source):
    folder = copy_of(text_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["tokenizer.json"].update(source=source))
    with pytest.raises(InputError, match="must be in the folder"):
        zoo.load(folder, device="cpu")


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/file.txt", "..", "", "a\\..\\b", "x" * 300])
def test_names_outside_the_folder_are_refused_before_reading(digits_dir, tmp_path, name):
    folder = copy_of(digits_dir, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    edit_card(folder, lambda card: pin(card, name, outside))
    for read in (lambda: zoo.load(folder, device="cpu"), lambda: zoo.info(str(folder))):
        with pytest.raises(InputError, match="plain file name inside the model folder"):
            read()


def test_symlinks_leaving_the_folder_are_refused(text_dir, tmp_path):
    folder = copy_of(text_dir, tmp_path)
    outside = tmp_path / "tokenizer.json"
    shutil.move(folder / "tokenizer.json", outside)
    (folder / "tokenizer.json").symlink_to(outside)
    with pytest.raises(InputError, match="points outside its model folder"):
        zoo.load(folder, device="cpu")
    shutil.move(folder / "card.json", tmp_path / "card.json")
    (folder / "card.json").symlink_to(tmp_path / "card.json")  # the card itself, too
    with pytest.raises(InputError, match="card.json points outside its model folder"):
        zoo.info(str(folder))
    (folder / "card.json").unlink()
    shutil.move(tmp_path / "card.json", folder / "card.json")
    (folder / "tokenizer.json").unlink()
    shutil.move(outside, folder / "real-tokenizer.json")
    (folder / "tokenizer.json").symlink_to("real-tokenizer.json")  # a link inside the folder is fine
    assert zoo.load(folder, device="cpu").predict("the movie was great")["label"]


def test_weights_must_be_the_local_safetensors_file(digits_dir, tmp_path):
    folder = copy_of(digits_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(format="raw"))
    with pytest.raises(InputError, match="format 'raw'.*only safetensors"):
        zoo.load(folder)
    edit_card(folder, lambda card: card["files"].pop("weights.safetensors"))
    with pytest.raises(InputError, match="pins no weights.safetensors"):
        zoo.info(str(folder))


def test_a_tampered_tokenizer_is_refused(text_dir, tmp_path):
    folder = copy_of(text_dir, tmp_path)
    with open(folder / "tokenizer.json", "a") as f:
        f.write(" ")
    with pytest.raises(WeightsIntegrityError, match="tokenizer.json"):
        zoo.load(folder, device="cpu")


def test_tokenizer_files_naming_a_path_never_make_save_write_outside(text_dir, tmp_path):
    folder = copy_of(text_dir, tmp_path)
    escape = tmp_path / "escape.txt"
    escape.write_text("x")

    def escape_card(card):
        pin(card, "../escape.txt", escape)
        card["preprocessing"]["tokenizer_files"] = ["tokenizer.json", "../escape.txt"]

    edit_card(folder, escape_card)
    with pytest.raises(InputError, match="'../escape.txt'"):
        zoo.load(folder, device="cpu")
    # The same names reaching save another way (a card edited in memory) are refused before any write.
    model = zoo.load(copy_of(text_dir, tmp_path / "b"), device="cpu")
    model.card.files["../escape.txt"] = dict(model.card.files["tokenizer.json"])
    model.adapter.paths["../escape.txt"] = model.adapter.paths["tokenizer.json"]
    model.adapter.tokenizer_files.append("../escape.txt")
    target = tmp_path / "out" / "target"
    with pytest.raises(InputError, match="plain file name"):
        model.save(target)
    assert not (tmp_path / "out" / "escape.txt").exists() and not target.exists()
    model.card.files["card.json"] = model.card.files.pop("../escape.txt")
    model.adapter.paths["card.json"] = model.adapter.paths.pop("../escape.txt")
    model.adapter.tokenizer_files[-1] = "card.json"
    with pytest.raises(InputError, match="would overwrite"):
        model.save(target)


def test_save_replaces_a_symlink_in_the_target_instead_of_writing_through_it(text_dir, tmp_path):
    model = zoo.load(text_dir, device="cpu")
    target = tmp_path / "target"
    target.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (target / "tokenizer.json").symlink_to(victim)
    model.save(target)
    assert victim.read_text() == "keep" and not (target / "tokenizer.json").is_symlink()
    assert zoo.load(target, device="cpu").predict("good")["label"]


@pytest.mark.parametrize("card_json, message", [
    ("[1, 2]", "JSON object, got list"),
    ("{", "not valid UTF-8 JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    ("[" * 100_000, "not valid UTF-8 JSON"),
    ('{"id": "x"}', "lacks required fields"),
])
def test_card_json_that_is_not_a_card(digits_dir, tmp_path, card_json, message):
    folder = copy_of(digits_dir, tmp_path)
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
    ("provenance", {"recipe": {"name": "image-classification", "parals": {}}}),  # found by the fuzz campaign
    ("provenance", {"recipe": {"name": 3, "params": {}}}), ("provenance", {"recipe": []}),
])
def test_card_fields_of_the_wrong_type(digits_dir, tmp_path, field, value):
    folder = copy_of(digits_dir, tmp_path)
    edit_card(folder, lambda card: card.__setitem__(field, value))
    with pytest.raises(InputError, match=f"{field}|files"):
        zoo.load(folder)


def test_a_huge_card_is_refused_without_parsing(digits_dir, tmp_path):
    folder = copy_of(digits_dir, tmp_path)
    (folder / "card.json").write_text('{"description": "' + "x" * (9 << 20) + '"}')
    with pytest.raises(InputError, match="over 8 MiB"):
        zoo.info(str(folder))


@pytest.mark.parametrize("arch_args", [{"num_classes": "ten"}, {"nonsense": 1}, {"num_classes": 3},
                                       {"num_classes": 2**40}, {"widths": [16, 32, 2**20]}, {"num_classes": -1}])
def test_arch_args_that_do_not_build_or_fit_the_weights(digits_dir, tmp_path, arch_args):
    folder = copy_of(digits_dir, tmp_path)
    edit_card(folder, lambda card: card["arch_args"].update(arch_args))
    with pytest.raises(InputError, match="do not fit|does not describe a model") as info:
        zoo.load(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key, value", [
    ("max_length", 2**70), ("max_length", 1e400), ("max_length", "long"), ("max_length", 1), ("max_length", 65),
    ("pad_token_id", 2**70), ("pad_token_id", -5), ("pad_token_id", 10**6),
    ("model_input_names", 5), ("model_input_names", ["attention_mask"]), ("model_input_names", [1]),
    ("tokenizer_files", 7), ("tokenizer", None),
])
def test_text_preprocessing_that_cannot_work_is_refused_at_load(text_dir, tmp_path, key, value):
    folder = copy_of(text_dir, tmp_path)
    edit_card(folder, lambda card: card["preprocessing"].__setitem__(key, value))
    with pytest.raises(InputError) as info:
        zoo.load(folder, device="cpu")
    assert key in str(info.value) or "does not describe" in str(info.value) or "pins no" in str(info.value)


def repin_weights(folder):
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(
        sha256=sha256_file(folder / "weights.safetensors"), size=(folder / "weights.safetensors").stat().st_size))


def test_pickled_weights_are_refused_as_unsafe(digits_dir, tmp_path, monkeypatch):
    folder = copy_of(digits_dir, tmp_path)
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
def test_weights_with_a_bad_safetensors_header_are_an_input_error(digits_dir, tmp_path, header):
    folder = copy_of(digits_dir, tmp_path)
    (folder / "weights.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    repin_weights(folder)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        zoo.load(folder)


def test_every_refusal_is_one_zoo_error_line(digits_dir, tmp_path):
    folder = copy_of(digits_dir, tmp_path)
    edit_card(folder, lambda card: card["files"]["weights.safetensors"].update(sha256=None))
    with pytest.raises(ZooError) as info:
        zoo.load(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model_id", ["x" * 5000, "a\0b", "toy/" + "y" * 300])
def test_ids_that_cannot_be_paths_are_unknown_models(model_id):
    for read in (zoo.load, zoo.info):
        with pytest.raises(ZooError, match="unknown model"):
            read(model_id)
