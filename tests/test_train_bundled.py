"""Each domain that bundles weights re-makes them with one ``train_bundled.py`` (issue 15, item 6): its
configs are the recipes the bundled cards record, and every bundled file has a config."""
import json
from importlib import import_module

import pytest

from zoo.bundled import main, weights_dir
from zoo.registry import get_registry, resolve_ref

DOMAINS = ["vision", "robotics", "medical"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_bundled_card_has_a_config_that_is_the_recipe_it_records(domain):
    configs = import_module(f"{domain}.train_bundled").CONFIGS
    # A card sits beside its weights; NAME.tokenizer.json and other task files do not.
    cards = sorted(path.stem for path in weights_dir(domain).glob("*.json") if path.with_suffix(".safetensors").is_file())
    assert cards == sorted(configs)
    for name, (recipe_name, params) in configs.items():
        recorded = json.loads((weights_dir(domain) / f"{name}.json").read_text())["provenance"]["recipe"]
        recipe_cls = resolve_ref(get_registry().recipe(recipe_name).recipe)
        current = json.loads(json.dumps(recipe_cls.from_overrides(params).to_dict()))
        # The card's recipe resolved as today: a field added since the card was written takes its default.
        kept = {k: v for k, v in recorded["params"].items() if k in current}
        resolved = json.loads(json.dumps(recipe_cls.from_overrides(kept).to_dict()))
        assert recorded["name"] == recipe_name
        assert {k: resolved[k] for k in kept} == {k: current[k] for k in kept}, name


def test_list_names_every_config_and_an_unknown_name_is_refused(capsys):
    configs = import_module("vision.train_bundled").CONFIGS
    main("vision", configs, ["--list"])
    listed = capsys.readouterr().out  # read once: a second read returns nothing
    assert len(configs) > 1 and all(name in listed for name in configs)
    with pytest.raises(SystemExit):
        main("vision", configs, ["no_such.model"])


def test_a_bundled_translator_keeps_its_tokenizer_beside_the_weights(tmp_path, monkeypatch):
    """``zoo.bundled.train`` copies every file the card pins: a translator's tokenizer as NAME.tokenizer.json."""
    from tests.nlp.test_translation import TINY_MARIAN, write_tsv
    from zoo.bundled import train
    from zoo.hashing import sha256_file

    package = tmp_path / "bundledmt"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    tsv = write_tsv(tmp_path / "pairs.tsv")
    configs = {"marian.toy": ("translation", {
        "model": "nlp/marian_translator.small", "data": str(tsv), "vocab_size": 60, "max_length": 16,
        "arch_args": {"config": TINY_MARIAN}, "train": {"epochs": 1, "batch_size": 8, "device": "cpu"}})}
    card = json.loads(train("bundledmt", "marian.toy", configs, tmp_path / "runs", resume=False).read_text())
    assert sorted(p.name for p in (package / "weights").iterdir()) == [
        "marian.toy.json", "marian.toy.safetensors", "marian.toy.tokenizer.json"]
    assert card["files"]["tokenizer.json"]["sha256"] == sha256_file(package / "weights" / "marian.toy.tokenizer.json")
