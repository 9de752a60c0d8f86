"""A bundle's text preprocessing (nlp.transforms:TextBatcher): its spec and the tokenizer file it names are
checked like the rest of bundle.json. A toy bundle is made to name a tiny, real tokenizer."""
import shutil

import pytest

from tests.bundles import edit_json
from zoo.errors import InputError, WeightsIntegrityError
from zoo.runtime import load_bundle, seal


@pytest.mark.parametrize("name", ["../tokenizer.json", "/etc/hostname", "sub/tokenizer.json", "unlisted.json", 7])
def test_files_the_preprocessing_names_must_be_verified_bundle_files(bundle, tmp_path, name):
    (tmp_path / "tokenizer.json").write_text("{}")
    edit_json(bundle / "bundle.json", lambda b: b.update(preprocessing={
        "ref": "nlp.transforms:TextBatcher", "spec": {"tokenizer": name, "max_length": 16}}))
    seal(bundle)
    with pytest.raises(InputError, match="expected one of the bundle's files"):
        load_bundle(bundle)


@pytest.fixture
def text_bundle(bundle):
    """The toy bundle made to name a (tiny, real) tokenizer: enough to load a TextBatcher from it."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "hello": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(bundle / "tokenizer.json"))
    return bundle


def use_text_spec(bundle, **spec):
    edit_json(bundle / "bundle.json", lambda b: b.update(preprocessing={
        "ref": "nlp.transforms:TextBatcher", "spec": {"tokenizer": "tokenizer.json", "max_length": 16, **spec}}))
    seal(bundle)


def test_a_text_spec_naming_a_bundle_file_loads(text_bundle):
    use_text_spec(text_bundle)
    assert load_bundle(text_bundle).preprocess(["hello you"])["input_ids"].tolist() == [[2, 1]]


def test_a_bundle_naming_the_batcher_where_it_lived_before_still_loads(text_bundle):
    edit_json(text_bundle / "bundle.json", lambda b: b.update(preprocessing={
        "ref": "nlp.tokenizer:TextBatcher", "spec": {"tokenizer": "tokenizer.json", "max_length": 16}}))
    seal(text_bundle)
    assert load_bundle(text_bundle).preprocess(["hello you"])["input_ids"].tolist() == [[2, 1]]


@pytest.mark.parametrize("field, value", [("max_length", "x"), ("max_length", 10 ** 30), ("max_length", None),
                                          ("pad_token_id", 10 ** 30), ("pad_token_id", -1), ("pad_token_id", 3),
                                          ("model_input_names", 5), ("tokenizer", None)])
def test_a_bad_text_spec_is_an_input_error_naming_bundle_json(text_bundle, field, value):
    use_text_spec(text_bundle, **{field: value})
    with pytest.raises(InputError, match="bundle.json: preprocessing spec for nlp.transforms:TextBatcher"):
        load_bundle(text_bundle)


def test_a_tokenizer_symlinked_from_outside_is_refused(text_bundle, tmp_path):
    use_text_spec(text_bundle)
    outside = tmp_path / "tokenizer.json"
    shutil.move(text_bundle / "tokenizer.json", outside)
    (text_bundle / "tokenizer.json").symlink_to(outside)
    with pytest.raises(WeightsIntegrityError, match="tokenizer.json.*not a regular file"):
        load_bundle(text_bundle)
