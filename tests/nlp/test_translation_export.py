"""A Marian translator exports as an encoder graph and a one-step decoder graph with past keys and values;
``zoo.runtime`` translates with them in a numpy greedy loop exactly as transformers' ``generate`` does."""
import json

import numpy as np
import pytest

from tests.nlp.test_translation import TINY_MARIAN, write_tsv
from zoo.errors import InputError

SENTENCES = ["the dog is red", "", "the cat is small and the house is big", "the house", "  ",
             "the dog is big the dog is big the dog is big the dog is big the dog is big"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import zoo
    from nlp.translation_recipe import TranslationRecipe
    from zoo.export import export

    tmp = tmp_path_factory.mktemp("mt-export")
    tsv = write_tsv(tmp / "t.tsv")
    TranslationRecipe(model="nlp/marian_translator.small", data=str(tsv), vocab_size=60, max_length=16,
                      arch_args={"config": TINY_MARIAN},
                      train={"epochs": 3, "batch_size": 8, "lr": 3e-3, "device": "cpu", "progress": False},
                      ).run(tmp / "m", progress=False)
    model = zoo.load(tmp / "m")
    export(model, tmp / "bundle")
    return model, tmp / "bundle"


def test_the_bundle_holds_both_graphs_and_its_greedy_ids_equal_generate(exported):
    _, bundle = exported
    assert {"model.onnx", "decoder.onnx", "tokenizer.json"} <= {p.name for p in bundle.iterdir()}
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["graphs"] == ["model.onnx", "decoder.onnx"]
    assert parity["predictions"]["passed"] and parity["predictions"]["identical"] == parity["predictions"]["sentences"]


def test_runtime_translations_equal_the_torch_model_in_order_with_empty_lines_kept(exported):
    from zoo.runtime import load_bundle

    model, bundle = exported
    runtime = load_bundle(bundle)
    for limit in (1, 3, 12):  # 1 and 3: the forced eos at the last step cuts every sentence
        assert runtime.translate(SENTENCES, max_new_tokens=limit, batch_size=2) == \
            model.predict(SENTENCES, max_new_tokens=limit, batch_size=2)
    assert runtime.predict("the dog is red") == model.predict("the dog is red", max_new_tokens=31)  # the bundle's 31
    assert runtime.translate(["", " "]) == ["", ""]
    with pytest.raises(InputError, match="from 1 to 31 \\(the decoder has 32 positions\\), got 32"):
        runtime.translate(["the dog"], max_new_tokens=32)


def test_runtime_truncates_long_sentences_as_the_model_does(exported, caplog):
    from zoo.runtime import load_bundle

    model, bundle = exported
    long = " ".join(["the dog is red"] * 12)  # over max_length 16 tokens
    with caplog.at_level("WARNING", logger="nlp"):
        assert load_bundle(bundle).predict([long]) == model.predict([long], max_new_tokens=31)
    assert "truncated" in caplog.text


def test_a_bundle_whose_translation_spec_lacks_its_decoder_is_refused(exported, tmp_path):
    import shutil

    from zoo.runtime import load_bundle, seal

    _, bundle = exported
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    spec = json.loads((copy / "bundle.json").read_text())
    del spec["postprocessing"]["decoder"]
    (copy / "bundle.json").write_text(json.dumps(spec))
    seal(copy)
    with pytest.raises(InputError, match="name its 'decoder' graph"):
        load_bundle(copy)
    spec["postprocessing"]["decoder"] = "../decoder.onnx"
    (copy / "bundle.json").write_text(json.dumps(spec))
    seal(copy)
    with pytest.raises(InputError, match="expected one of the bundle's files"):
        load_bundle(copy)


def test_greedy_decode_stops_each_row_at_its_eos():
    from zoo.runtime import greedy_decode

    class Encoder:
        def run(self, _, inputs):
            batch = len(inputs["input_ids"])
            return np.zeros((1, batch, 1, 2, 1), np.float32), np.zeros((1, batch, 1, 2, 1), np.float32)

    class Decoder:  # row 0 says 5 then eos (1); row 1 says 7 forever
        def run(self, _, feed):
            step, keys = int(feed["step"][0]), feed["self_keys"]
            logits = np.zeros((2, 9), np.float32)
            logits[0, 5 if step == 0 else 1] = 1
            logits[1, 7] = 1
            grown = np.concatenate([keys, keys[:, :, :, :1] if keys.shape[3] else np.zeros((1, 2, 1, 1, 1), np.float32)], 3)
            return logits, grown, grown

    inputs = {"input_ids": np.zeros((2, 2), np.int64), "attention_mask": np.ones((2, 2), np.int64)}
    rows = greedy_decode(Encoder(), Decoder(), inputs, max_new_tokens=4, start_id=0, eos_id=1)
    assert rows == [[5, 1], [7, 7, 7, 1]]


def test_a_gru_translator_refuses_to_export_saying_why(tmp_path):
    from nlp.translation_recipe import TranslationRecipe
    from tests.nlp.test_translation import TINY_GRU
    from zoo.export import export
    import zoo

    tsv = write_tsv(tmp_path / "t.tsv")
    TranslationRecipe(model="nlp/gru_translator.small", data=str(tsv), vocab_size=60, max_length=16, arch_args=TINY_GRU,
                      train={"epochs": 1, "batch_size": 8, "device": "cpu", "progress": False}).run(tmp_path / "g",
                                                                                                     progress=False)
    with pytest.raises(InputError, match="only Transformer \\(Marian\\) translators export"):
        export(zoo.load(tmp_path / "g"), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
