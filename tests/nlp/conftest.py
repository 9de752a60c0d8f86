"""Shared NLP fixtures: the real all-MiniLM-L6-v2 (loaded once) and a tiny BERT checkpoint."""
import pytest

from tests.nlp.helpers import make_tiny_bert


@pytest.fixture(scope="session")
def minilm():
    """The registered sentence encoder, loaded once for the session (tests must not change it)."""
    import zoo

    return zoo.load("nlp/text_encoder.all_minilm_l6_v2", device="cpu")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny 2-label BERT checkpoint directory written by transformers' save_pretrained."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
