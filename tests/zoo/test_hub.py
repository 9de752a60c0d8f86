"""zoo.load / save / info on the toy domain: the hub without any installed domain."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import zoo
from tests.zoo import toy
from zoo.errors import InputError, OfflineError, WeightsIntegrityError
from zoo.registry import ModelSpec, WeightFile

pytestmark = pytest.mark.usefixtures("toy_registry")


@pytest.fixture
def model():
    return zoo.load(toy.MODEL_ID, device="cpu")


def test_list_models_filters_by_pattern_domain_task_and_weights():
    assert zoo.list_models("toy/*") == [toy.MODEL_ID, toy.BARE_ID]
    assert zoo.list_models("toy/mlp.*", domain="toy", task="toy-classification", pretrained=True) == [toy.MODEL_ID]
    assert zoo.list_models("toy/*", domain="other") == []
    assert zoo.list_models(pretrained=False) == [toy.BARE_ID]


def test_pretrained_weights_are_the_pinned_file(model):
    torch.manual_seed(0)
    expected = toy.tiny_mlp().state_dict()
    assert all(torch.equal(model.net.state_dict()[k], v) for k, v in expected.items())
    assert model.card.files["weights.safetensors"]["sha256"] == zoo.hub.get_registry().model(toy.MODEL_ID).weights[0].sha256


def test_predict_takes_one_input_or_a_list_and_keeps_the_training_mode(model):
    single = model.predict(np.ones(4))
    assert single["label"] in toy.LABELS and 0 < single["score"] <= 1
    assert len(model.predict([np.ones(4), np.zeros(4)])) == 2
    model.train()  # predict switches to eval for the call and restores the mode it found
    model.predict(np.ones(4))
    assert model.training


def test_save_then_load_gives_an_equal_model(model, tmp_path):
    model.save(tmp_path / "copy")
    again = zoo.load(tmp_path / "copy", device="cpu")
    assert again.card == model.card
    mine, theirs = model.net.state_dict(), again.net.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    x = list(np.random.default_rng(0).normal(size=(5, 4)))
    assert model.predict(x) == again.predict(x)
    assert zoo.info(str(tmp_path / "copy")).id == toy.MODEL_ID


def test_tampered_saved_weights_are_refused(model, tmp_path):
    model.save(tmp_path / "copy")
    weights = tmp_path / "copy" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="weights.safetensors: expected [0-9a-f]{64}, got [0-9a-f]{64}"):
        zoo.load(tmp_path / "copy")


def test_num_classes_replaces_the_head_and_keeps_the_backbone(model):
    five = zoo.load(toy.MODEL_ID, num_classes=5, device="cpu")
    assert five(torch.zeros(2, 4)).shape == (2, 5)
    assert five.card.labels == [f"class_{i}" for i in range(5)] and five.card.metrics == []
    assert five.card.provenance["finetune_from"] == toy.MODEL_ID
    assert torch.equal(five.net.body.weight, model.net.body.weight)
    assert five.predict(np.zeros(4))["label"].startswith("class_")


def test_a_new_head_gives_the_task_its_spec_names(toy_registry, monkeypatch):
    import dataclasses

    from zoo.registry import TaskSpec, resolve_ref

    plain = toy_registry.task("toy-classification")
    headed_adapter = type("HeadedAdapter", (resolve_ref(plain.adapter),), {})
    monkeypatch.setitem(toy_registry.tasks, plain.name, dataclasses.replace(plain, head_task="toy-headed"))
    monkeypatch.setitem(toy_registry.tasks, "toy-headed", TaskSpec("toy-headed", headed_adapter))
    two = zoo.load(toy.MODEL_ID, num_classes=2, device="cpu")
    assert two.card.task == "toy-headed" and type(two.adapter) is headed_adapter
    assert plain.task_with_head(2) == plain.task_with_head(0) == "toy-classification"  # no successor: it stays


def test_pretrained_false_builds_fresh_weights(model):
    fresh = zoo.load(toy.MODEL_ID, pretrained=False, device="cpu")
    assert not torch.equal(fresh.net.head.weight, model.net.head.weight)
    assert fresh.card.files == {} and fresh.card.metrics == []


def test_a_model_without_weights_refuses_pretrained():
    with pytest.raises(InputError, match=f"{toy.BARE_ID} has no pretrained weights"):
        zoo.load(toy.BARE_ID)
    assert zoo.load(toy.BARE_ID, pretrained=False).card.files == {}


@pytest.fixture
def remote_spec(toy_registry, monkeypatch):
    local = toy_registry.model(toy.MODEL_ID)
    spec = ModelSpec(
        id="toy/mlp.remote",
        task=local.task,
        architecture=local.architecture,
        arch_args=dict(local.arch_args),
        weights=(WeightFile("weights.safetensors", "0" * 64, "https://example.invalid/mlp.safetensors"),),
        card=dict(local.card),
    )
    monkeypatch.setitem(toy_registry.models, spec.id, spec)
    return spec


def test_offline_and_not_cached_names_the_fetch_command(remote_spec, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="zoo fetch toy/mlp.remote"):
        zoo.load(remote_spec.id)


def test_import_zoo_and_listing_do_not_import_torch():
    # About the domain plug-in mechanism: a fresh process discovers the installed domains, whose declarations
    # must not import torch either (a card of each installed domain is read).
    code = (
        "import sys, zoo; ids = zoo.list_models(); [zoo.info(i) for i in {i.split('/')[0]: i for i in ids}.values()]; "
        "from zoo.cli import app; app(['list'], standalone_mode=False); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _upstream_loader(tag: str):
    def load(name, *, pretrained=True, num_classes=None, **options):
        model = zoo.load(toy.MODEL_ID, device="cpu")
        model.card.description = f"{tag}:{name}:{sorted(options)}"
        return model

    return load


def test_a_prefix_served_by_two_domains_goes_to_the_loader_that_claims_the_model(toy_registry):
    """One prefix, two loaders: the one with ``claims`` takes what it claims, the default one the rest."""
    from zoo.errors import InputError
    from zoo.hub import tasks_of
    from zoo.registry import SourceSpec

    asked = []

    def claims(name, kind=None, **options):
        asked.append((name, kind))
        return name.startswith("pictures/") or kind == "picture"

    toy_registry.add(SourceSpec("up", _upstream_loader("default"), lambda pattern: ["a", "b"]),
                     SourceSpec("up", _upstream_loader("claimed"), lambda pattern: ["b", "c"], claims=claims,
                                tasks=("toy-classification",)))
    assert zoo.load("up:pictures/x").card.description == "claimed:pictures/x:[]"
    assert zoo.load("up:text/y").card.description == "default:text/y:[]"
    assert zoo.load("up:text/y", kind="picture").card.description == "claimed:text/y:['kind']"
    assert ("text/y", "picture") in asked
    assert zoo.list_models("up:*") == ["up:b", "up:c", "up:a"]  # every lister (claiming ones first), each name once
    assert zoo.info("up:pictures/z").description == "claimed:pictures/z:[]"
    assert tasks_of("up:x") is None  # the default loader declares no tasks: only a build tells
    assert tasks_of(toy.MODEL_ID) == ("toy-classification",)
    del toy_registry.sources["up"]  # no default loader left: what none claims is refused, saying why
    assert tasks_of("up:x") == ("toy-classification",)
    with pytest.raises(InputError, match="no installed domain loads 'up:text/y'"):
        zoo.load("up:text/y")
