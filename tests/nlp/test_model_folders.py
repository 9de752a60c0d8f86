"""A text classifier's folder: its tokenizer files are saved beside the weights, pinned, and read back only
from inside the folder; its text preprocessing is checked at load (see tests/zoo/test_model_folders.py)."""
import pytest

import zoo
from tests.nlp.helpers import install_in_hf_cache, make_tiny_bert
from tests.zoo.test_model_folders import copy_of, edit_card, pin
from zoo.errors import InputError

HF_REPO = "tiny-org/tiny-bert"


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A saved tiny BERT text classifier: weights, card and tokenizer.json."""
    home = tmp_path_factory.mktemp("hf-home")
    install_in_hf_cache(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")), home / "hub", HF_REPO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        model = zoo.load(f"hf:{HF_REPO}", device="cpu")
    return model.save(tmp_path_factory.mktemp("text") / "model")


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
