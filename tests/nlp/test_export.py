"""``zoo export`` of MiniLM: a text bundle whose tokenizer stays outside the graph, run without torch."""
import json

import numpy as np

import zoo
from tests.bundles import run_without_torch
from zoo.export import export

SENTENCES = ["A short sentence.", "Benchmarks need a control arm so that a number means something."]


def test_text_bundle_keeps_the_tokenizer_outside_the_graph(tmp_path):
    bundle = export("nlp/text_encoder.all_minilm_l6_v2", tmp_path / "minilm")
    assert (bundle / "tokenizer.json").is_file()
    spec = json.loads((bundle / "bundle.json").read_text())
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "token_type_ids", "attention_mask"]
    assert spec["inputs"][0]["shape"] == [None, None]  # batch and sequence length are dynamic
    got = np.asarray(run_without_torch(f"""
        import json
        from zoo.runtime import load_bundle
        print(json.dumps([e.tolist() for e in load_bundle({str(bundle)!r}).predict({SENTENCES!r})]))
    """))
    expected = zoo.load("nlp/text_encoder.all_minilm_l6_v2", device="cpu").predict(SENTENCES)
    assert got.shape == (2, 384) and np.abs(got - expected).max() < 1e-4
