"""zoo.card: the model card's JSON round trip and the checks on a card read from an untrusted folder."""
import json
import os

import pytest

from zoo.atomic import write_text_atomic
from zoo.card import MAX_CARD_BYTES, ModelCard, check_file_name
from zoo.errors import InputError


def full_card() -> ModelCard:
    return ModelCard(
        id="toy/mlp.seed0", domain="toy", task="toy-classification", architecture="tiny_mlp",
        arch_args={"num_classes": 3}, labels=["low", "mid", "high"], input={"shape": [4], "dtype": "float32"},
        metrics=[{"name": "accuracy", "value": 0.9, "dataset": "toy/blobs", "split": "test", "ci95": [0.8, 0.95]}],
        params=67, license="CC0-1.0", source="local", description="a toy",
        files={"weights.safetensors": {"sha256": "a" * 64, "size": 10, "source": "w.safetensors"}},
        provenance={"recipe": {"name": "toy", "params": {"epochs": 3}}, "seed": 0},
    )


def test_save_then_load_round_trips_every_field(tmp_path):
    card = full_card()
    path = card.save(tmp_path)
    assert path == tmp_path / "card.json"
    assert ModelCard.load(tmp_path) == card == ModelCard.load(path)
    assert ModelCard.from_dict(json.loads(path.read_text())) == card
    assert json.loads(path.read_text())["schema_version"] == 1


def test_metric_finds_the_first_by_name_and_split():
    card = full_card()
    assert card.metric("accuracy")["value"] == 0.9 and card.metric("accuracy", split="test")["value"] == 0.9
    assert card.metric("accuracy", split="val") is None and card.metric("loss") is None


@pytest.mark.parametrize("data, message", [
    ([1, 2], "expected a model card as a JSON object, got list"),
    ({"id": "a/b", "domain": "a"}, r"lacks required fields \['task', 'architecture'\]"),
    ({**full_card().to_dict(), "weights": "x"}, r"unknown fields \['weights'\]"),
    ({**full_card().to_dict(), "params": True}, "'params' must be int or null, got bool"),
    ({**full_card().to_dict(), "arch_args": []}, "'arch_args' must be dict"),
    ({**full_card().to_dict(), "labels": ["a", 1]}, "labels must be strings"),
    ({**full_card().to_dict(), "metrics": [{"name": "acc", "value": "high"}]}, "metrics must be objects"),
    ({**full_card().to_dict(), "files": {"w": "sha"}}, "files must map names to objects"),
    ({**full_card().to_dict(), "provenance": {"recipe": "toy"}}, "provenance.recipe must be an object"),
])
def test_from_dict_says_what_is_wrong_with_a_card(data, message):
    with pytest.raises(InputError, match=message):
        ModelCard.from_dict(data)


@pytest.mark.parametrize("content, message", [
    (None, "found no file"),
    (b"\xff\xfe", "not valid UTF-8 JSON"),
    (b"{", "not valid UTF-8 JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid UTF-8 JSON"),
    (b'{"id": "a/b"}', r"card.json: model card lacks required fields"),
])
def test_load_turns_every_unreadable_file_into_an_input_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "card.json").write_bytes(content)
    with pytest.raises(InputError, match=message):
        ModelCard.load(tmp_path)


def test_a_card_over_the_size_limit_is_refused_unparsed(tmp_path):
    (tmp_path / "card.json").write_bytes(b" " * (MAX_CARD_BYTES + 1))
    with pytest.raises(InputError, match="a card is a small JSON file"):
        ModelCard.load(tmp_path)


@pytest.mark.parametrize("name", ["../x", "/etc/hostname", "a/b", "a\\b", "..", ".", "", "a\0b", "x" * 256, 7, None])
def test_file_names_a_card_may_hold_are_plain_names(name):
    with pytest.raises(InputError, match="plain file name"):
        check_file_name(name)


def test_a_plain_name_passes():
    assert check_file_name("tokenizer.json") == "tokenizer.json"


def test_write_text_atomic_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "card.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two" and os.listdir(target.parent) == ["card.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
