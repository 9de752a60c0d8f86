"""``hf:ORG/REPO[@REV]`` pass-through, offline, against a tiny BERT in a fake Hugging Face cache."""
import json

import numpy as np
import pytest
import torch

import zoo
from tests.nlp.helpers import COMMIT, install_in_hf_cache
from zoo.errors import InputError, OfflineError, UnsafeFormatError

REPO = "tiny-org/tiny-bert"
TEXTS = ["the movie was great !", "i hated it .", "awful"]


@pytest.fixture
def cached_repo(tiny_bert, isolated_zoo_home):
    """The tiny checkpoint installed in this test's HF cache (HF_HOME is per test, offline)."""
    return install_in_hf_cache(tiny_bert, isolated_zoo_home / "hf" / "hub", REPO)


def reference_logits(checkpoint, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()


def test_loads_offline_from_the_hf_cache_and_matches_transformers(cached_repo, tiny_bert):
    model = zoo.load(f"hf:{REPO}", task="text-classification", device="cpu")
    assert model.card.id == f"hf:{REPO}" and model.card.task == "text-classification"
    assert model.card.labels == ["negative", "positive"]
    predictions = model.predict(TEXTS)
    expected = reference_logits(tiny_bert, TEXTS)
    scores = np.array([[dict(p["top_k"])[label] for label in ("negative", "positive")] for p in predictions])
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    weights = model.card.files["model.safetensors"]
    assert weights["source"] == f"hf://{REPO}/model.safetensors@{COMMIT}"
    assert weights["sha256"] == zoo.cache.sha256_file(tiny_bert / "model.safetensors")
    assert model.card.files["tokenizer.json"]["format"] == "raw"


def test_empty_text_is_classified_as_transformers_classifies_it(cached_repo, tiny_bert):
    model = zoo.load(f"hf:{REPO}", task="text-classification", device="cpu")
    texts = ["", "   ", "the movie was great !"]
    scores = np.array([[dict(p["top_k"])[label] for label in ("negative", "positive")] for p in model.predict(texts)])
    np.testing.assert_allclose(scores, reference_logits(tiny_bert, texts), atol=1e-5)


def test_revision_pin_local_directory_and_listing(cached_repo, tiny_bert):
    pinned = zoo.load(f"hf:{REPO}@{COMMIT}", device="cpu")
    assert pinned.card.id == f"hf:{REPO}@{COMMIT}" and pinned.card.source == f"hf://{REPO}@{COMMIT}"
    local = zoo.load(f"hf:{tiny_bert}", device="cpu")
    assert [p["label"] for p in local.predict(TEXTS)] == [p["label"] for p in pinned.predict(TEXTS)]
    assert zoo.list_models("hf:*") == [f"hf:{REPO}"] and zoo.list_models("hf:nothing*") == []
    with pytest.raises(OfflineError, match="not in the Hugging Face cache"):
        zoo.load(f"hf:{REPO}@fedcba9876543210fedcba9876543210fedcba98")


def test_sentence_embedding_task_and_new_head(cached_repo):
    encoder = zoo.load(f"hf:{REPO}", task="sentence-embedding", device="cpu")
    embeddings = encoder.predict(TEXTS)
    assert embeddings.shape == (3, 16) and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    three = zoo.load(f"hf:{REPO}", num_classes=3, device="cpu")
    assert three.card.labels == ["class_0", "class_1", "class_2"] and len(three.predict("good")["top_k"]) == 3
    with pytest.raises(InputError, match="BertForSequenceClassification checkpoint, not object-detection"):
        zoo.load(f"hf:{REPO}", task="object-detection")  # vision's hf: loader takes that task, and says why not
    with pytest.raises(InputError, match="not an encoder-decoder"):
        zoo.load(f"hf:{REPO}", task="translation")


def test_saved_hf_model_reloads_without_the_hub(cached_repo, tmp_path, monkeypatch):
    model = zoo.load(f"hf:{REPO}", device="cpu")
    before = model.predict(TEXTS)
    model.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["card.json", "tokenizer.json", "weights.safetensors"]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "empty-zoo"))
    again = zoo.load(tmp_path / "saved", device="cpu")
    assert again.card.architecture == "hf_sequence_classifier"
    assert [p["score"] for p in again.predict(TEXTS)] == pytest.approx([p["score"] for p in before], abs=1e-6)


def test_pickle_only_checkpoints_and_remote_code_are_refused(tiny_bert, tmp_path):
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_bert, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeFormatError, match="never unpickles"):
        zoo.load(f"hf:{pickled}")
    remote = tmp_path / "remote"
    shutil.copytree(tiny_bert, remote)
    config = json.loads((remote / "config.json").read_text())
    config.update(model_type="my-custom-bert", auto_map={"AutoConfig": "configuration_custom.CustomConfig"})
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "configuration_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(InputError, match="trust_remote_code=True"):
        zoo.load(f"hf:{remote}")


def test_options_only_reach_pass_through_ids():
    with pytest.raises(InputError, match="only pass-through ids"):
        zoo.load("nlp/text_encoder.all_minilm_l6_v2", task="text-classification")


def test_fine_tune_an_hf_checkpoint_with_a_new_head(cached_repo, tmp_path):
    from nlp.recipes import TextClassificationRecipe
    from tests.nlp.helpers import write_reviews

    data = write_reviews(tmp_path / "reviews.csv", extra_rows=[("it is okay", "3"), ("fine I guess", "3")])
    recipe = TextClassificationRecipe(model=f"hf:{REPO}", data=str(data), text_column="review", label_column="stars",
                                      new_head=True, freeze_encoder=True, train={"epochs": 1, "batch_size": 8})
    recipe.run(tmp_path / "tuned", progress=False)
    tuned = zoo.load(tmp_path / "tuned", device="cpu")
    assert tuned.card.labels == ["1", "3", "5"] and tuned.card.architecture == "hf_sequence_classifier"
    assert tuned.predict("the movie was great")["label"] in ("1", "3", "5")
    with pytest.raises(InputError, match=r"does not know.*new_head=true"):
        TextClassificationRecipe(model=f"hf:{REPO}", data=str(data), text_column="review", label_column="stars",
                                 train={"epochs": 1}).run(tmp_path / "kept", progress=False)
