"""zoo.registry: ids, lookups with suggestions, duplicate declarations, entry-point discovery."""
import subprocess
import sys
from types import SimpleNamespace

import pytest

import zoo
from tests.zoo import toy
from zoo import registry as registry_module
from zoo.errors import UnknownDatasetError, UnknownModelError, ZooError
from zoo.registry import (ArchitectureSpec, ModelSpec, Registry, TaskSpec, WeightFile, as_tag, check_id,
                          resolve_ref)


@pytest.mark.parametrize("good", ["toy/mlp.seed0", "toy/efficientnet_lite0.in1k", "vision/resnet18.tv_in1k",
                                  "robotics/mlp_gaussian.ppo_hopper_v5", "vision/convnext_tiny.in12k_ft_in1k"])
def test_ids_are_lower_case_domain_slash_arch_dot_tag(good):
    check_id(good)


@pytest.mark.parametrize("bad", ["mlp", "/mlp", "toy/", "Toy/mlp", "toy/MLP", "", "a/b", "toy/mlp.", "toy/.seed0",
                                 "toy/tiny-mlp.seed0", "toy/mlp.seed-0", "toy/mlp.seed0.v2", "toy/mlp.Seed0",
                                 "toy/mlp seed0.x", "toy/9mlp.x"])
def test_ids_that_break_the_rule_are_refused(bad):
    with pytest.raises(ValueError, match="lower-case 'domain/arch.tag'"):
        check_id(bad)
    with pytest.raises(ValueError):
        ModelSpec(bad, task="t", architecture="a")


@pytest.mark.parametrize("bad", ["tiny-mlp", "TinyMLP", "tiny.mlp", "", "9mlp"])
def test_architecture_names_are_snake_case(bad):
    with pytest.raises(ValueError, match="snake_case"):
        ArchitectureSpec(bad, "tests.zoo.toy:tiny_mlp")


def test_as_tag_makes_a_tag_of_any_text():
    assert as_tag("CartPole-v1") == "cartpole_v1" and as_tag(" In-12k / FT ") == "in_12k_ft"
    check_id(f"toy/mlp.{as_tag('InvertedPendulum-v5')}")


def renamed_registry() -> Registry:
    registry = Registry()
    registry.add(ArchitectureSpec("tiny_mlp", "tests.zoo.toy:tiny_mlp", aliases=("tiny-mlp",)))
    registry.add(ModelSpec("toy/tiny_mlp.seed0", task="toy-classification", architecture="tiny_mlp",
                                 aliases=("toy/mlp-seed0",)))
    return registry


def test_a_former_model_id_gives_the_renamed_spec_and_warns_naming_the_new_id():
    registry = renamed_registry()
    with pytest.warns(FutureWarning, match="'toy/mlp-seed0' is renamed 'toy/tiny_mlp.seed0'"):
        assert registry.model("toy/mlp-seed0").id == "toy/tiny_mlp.seed0"


def test_a_former_architecture_name_gives_the_renamed_spec_and_warns_naming_the_new_name():
    registry = renamed_registry()
    with pytest.warns(FutureWarning, match="'tiny-mlp' is renamed 'tiny_mlp'"):
        assert registry.architecture("tiny-mlp").name == "tiny_mlp"


def test_a_former_id_taken_by_two_models_is_refused():
    registry = renamed_registry()
    with pytest.raises(ZooError, match="'toy/mlp-seed0' is registered twice"):
        registry.add(ModelSpec("toy/tiny_mlp.seed1", task="t", architecture="tiny_mlp", aliases=("toy/mlp-seed0",)))


def test_every_registered_id_names_its_architecture_and_every_former_id_resolves():
    """The rule over the installed domains: ``domain/<arch>.<tag>``, ``<arch>`` the spec's architecture
    (or, for a pinned upstream model, the upstream's architecture name)."""
    registry = registry_module.discover()
    for spec in registry.models.values():
        arch = spec.id.split("/", 1)[1].split(".", 1)[0]
        assert arch in (spec.architecture, spec.arch_args.get("model_name", "").split(".")[0]), spec.id
        registry.architecture(spec.architecture)
    for old, new in registry.model_aliases.items():
        with pytest.warns(FutureWarning, match=new):
            assert registry.model(old).id == new


def test_a_model_spec_knows_its_domain_and_whether_it_has_weights(toy_registry):
    assert toy_registry.model(toy.MODEL_ID).domain == "toy"
    assert toy_registry.model(toy.MODEL_ID).pretrained and not toy_registry.model(toy.BARE_ID).pretrained


def test_unknown_id_lists_close_matches(toy_registry):
    with pytest.raises(UnknownModelError, match="did you mean: toy/mlp.seed0") as info:
        zoo.load("toy/mlp.seed")
    assert toy.MODEL_ID in info.value.suggestions


@pytest.mark.parametrize("lookup, key, error", [
    ("task", "toy-clasification", UnknownModelError),
    ("architecture", "tiny_mpl", UnknownModelError),
    ("recipe", "toy-classificatio", UnknownModelError),
    ("dataset", "toy/blob", UnknownDatasetError),
])
def test_every_lookup_names_its_kind_and_close_matches(toy_registry, lookup, key, error):
    with pytest.raises(error) as info:
        getattr(toy_registry, lookup)(key)
    assert isinstance(info.value, ZooError) and info.value.suggestions


def test_declaring_the_same_spec_twice_is_harmless_a_different_one_is_refused(toy_registry):
    toy_registry.add(ArchitectureSpec("tiny_mlp", "tests.zoo.toy:tiny_mlp"))
    with pytest.raises(ZooError, match="'tiny_mlp' is registered twice with different specs"):
        toy_registry.add(ArchitectureSpec("tiny_mlp", "tests.zoo.toy:TinyMLP"))
    with pytest.raises(ZooError, match="registered twice"):
        toy_registry.add(ModelSpec(toy.MODEL_ID, task="toy-classification", architecture="other"))
    assert toy_registry.model(toy.MODEL_ID).architecture == "tiny_mlp"


def test_list_models_sorts_and_filters(toy_registry):
    assert [s.id for s in toy_registry.list_models()] == sorted(toy_registry.models)
    assert [s.id for s in toy_registry.list_models("*.untrained")] == [toy.BARE_ID]
    assert toy_registry.list_models(task="image-classification") == []


def test_a_moved_ref_resolves_where_it_lives_now(monkeypatch):
    monkeypatch.setitem(registry_module.MOVED_REFS, "tests.zoo.old_toy:tiny_mlp", "tests.zoo.toy:tiny_mlp")
    assert resolve_ref("tests.zoo.old_toy:tiny_mlp") is toy.tiny_mlp


def test_resolve_ref_imports_module_attribute_and_passes_callables():
    assert resolve_ref("tests.zoo.toy:tiny_mlp") is toy.tiny_mlp
    assert resolve_ref(toy.tiny_mlp) is toy.tiny_mlp
    with pytest.raises(ValueError, match="module:attribute"):
        resolve_ref("tests.zoo.toy")


@pytest.mark.parametrize("fields, message", [
    ({"sha256": "ab"}, "64 hex digits"),
    ({"format": "pickle"}, "format must be one of"),
    ({"remap": "m:f"}, "remap applies to the \('torch-pickle', 'lightning-pickle'\) conversions"),
    ({"format": "torch-pickle", "remap": "no-colon"}, "'module:function'"),
])
def test_a_weight_file_declaration_is_checked_when_made(fields, message):
    with pytest.raises(ValueError, match=message):
        WeightFile(**{"name": "w", "sha256": "a" * 64, "source": "w.safetensors", **fields})


def test_discovery_calls_every_zoo_domains_entry_point_in_name_order(monkeypatch, tmp_path):
    calls = []

    def entry_point(name):
        def register(registry):
            calls.append(name)
            if name == "toy":
                toy.register(registry, toy.write_weights(tmp_path))
            else:
                registry.add(TaskSpec(f"{name}-task", "tests.zoo.toy:ToyClassification"))
        return SimpleNamespace(name=name, module=name, dist=None, load=lambda: register)

    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: [entry_point("zeta"), entry_point("toy")] if group == "zoo.domains" else [])
    registry = registry_module.discover()
    assert calls == ["toy", "zeta"]
    assert toy.MODEL_ID in registry.models and "zeta-task" in registry.tasks


def test_get_registry_discovers_once_and_caches(monkeypatch):
    found = []
    monkeypatch.setattr(registry_module, "_registry", None)
    monkeypatch.setattr(registry_module, "discover", lambda: found.append(Registry()) or found[-1])
    first = registry_module.get_registry()
    assert registry_module.get_registry() is first and len(found) == 1


# The next two tests are about the domain plug-in mechanism itself: they name the installed domain packages.
def test_the_installed_domains_are_discovered_through_entry_points():
    assert Registry().list_models() == []  # a registry holds only what was declared into it
    assert {"vision", "nlp", "robotics", "medical"} <= {spec.domain for spec in registry_module.discover().list_models()}


def test_a_folder_shadowing_a_domain_package_is_named(tmp_path):
    (tmp_path / "nlp").mkdir()  # a user's data folder that happens to share the package's name
    script = "import zoo.errors, zoo.hub\ntry:\n    zoo.hub.list_models()\nexcept zoo.errors.ZooError as e:\n    print(e)"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"the folder {tmp_path.resolve() / 'nlp'} shadows the installed domain package 'nlp'" in result.stdout


def test_a_registered_dataset_loader_is_resolved_and_called(toy_registry):
    splits = resolve_ref(toy_registry.dataset("toy/blobs").loader)(n=30)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    assert train_x.shape == (20, toy.IN_FEATURES) and test_x.shape == (10, toy.IN_FEATURES)
    assert sorted(set(train_y.tolist())) == [0, 1, 2]


def test_a_bundled_model_takes_what_its_recipe_wrote_unless_the_spec_says_otherwise(tmp_path, monkeypatch):
    """The recipe's card describes the weights it wrote: its classes, preprocessing and arch_args fill the
    spec; a spec's own card fields win; metrics and provenance always come from the recipe's card."""
    import json

    from zoo.registry import bundled_model

    weights = tmp_path / "bundledpkg" / "weights"
    weights.mkdir(parents=True)
    (weights.parent / "__init__.py").write_text("")
    (weights / "net.toy.json").write_text(json.dumps({
        "labels": ["a", "b"], "preprocessing": {"size": [8, 8]}, "arch_args": {"num_classes": 2, "width": 4},
        "metrics": [{"name": "accuracy", "value": 0.5}], "params": 10,
        "files": {"weights.safetensors": {"sha256": "0" * 64, "size": 1}}}))
    monkeypatch.syspath_prepend(str(tmp_path))

    spec = bundled_model("bundledpkg", "net.toy", id="toy/net.toy", task="t", architecture="net",
                         card={"preprocessing": {"size": [16, 16]}, "metrics": []})
    assert spec.arch_args == {"num_classes": 2, "width": 4}
    assert spec.card["labels"] == ["a", "b"] and spec.card["preprocessing"] == {"size": [16, 16]}
    assert spec.card["metrics"] == [{"name": "accuracy", "value": 0.5}] and spec.card["params"] == 10
    assert spec.weights[0].source == "package://bundledpkg/weights/net.toy.safetensors"
    assert bundled_model("bundledpkg", "net.toy", id="toy/net.toy", task="t", architecture="net",
                         arch_args={"num_classes": 3}).arch_args == {"num_classes": 3}


def test_a_bundled_model_pins_every_file_its_card_lists_beside_the_weights(tmp_path, monkeypatch):
    """A translator's card lists its tokenizer too: it is bundled as ``weights/NAME.tokenizer.json``, a raw file."""
    import json

    from zoo.registry import bundled_model

    weights = tmp_path / "bundledpkg2" / "weights"
    weights.mkdir(parents=True)
    (weights.parent / "__init__.py").write_text("")
    (weights / "mt.toy.json").write_text(json.dumps({"files": {
        "weights.safetensors": {"sha256": "0" * 64, "size": 1}, "tokenizer.json": {"sha256": "1" * 64, "size": 2}}}))
    monkeypatch.syspath_prepend(str(tmp_path))

    spec = bundled_model("bundledpkg2", "mt.toy", id="toy/mt.toy", task="translation", architecture="mt")
    files = {w.name: (w.source, w.format, w.sha256, w.size) for w in spec.weights}
    assert files == {
        "weights.safetensors": ("package://bundledpkg2/weights/mt.toy.safetensors", "safetensors", "0" * 64, 1),
        "tokenizer.json": ("package://bundledpkg2/weights/mt.toy.tokenizer.json", "raw", "1" * 64, 2)}
