"""``ZOO_OFFLINE=1`` and a machine without DNS on the ``hf:`` pass-through: a cached model loads, a missing
one is an OfflineError, and no socket is opened (see tests/offline.py)."""
import pytest

from tests.nlp.helpers import install_in_hf_cache, make_tiny_bert
from tests.offline import assert_reported_unreachable, run_cases, user_env

HF_CASES = """
    import zoo

    cases = {
        "hf: cached": lambda: zoo.load("hf:tiny-org/tiny-bert", device="cpu").predict("the movie was great")["label"],
        "hf: not cached": lambda: zoo.load("hf:nobody/missing-model"),
        "hf: info": lambda: zoo.info("hf:tiny-org/tiny-bert"),
    }
"""


@pytest.fixture
def hf_cached(tmp_path):
    """A tiny BERT in the user's Hugging Face cache (``HF_HOME`` of :func:`tests.offline.user_env`)."""
    install_in_hf_cache(make_tiny_bert(tmp_path / "tiny-bert"), tmp_path / "hf" / "hub", "tiny-org/tiny-bert")
    return tmp_path


def test_zoo_offline_opens_no_socket_on_the_hf_path(hf_cached):
    results = run_cases(HF_CASES, user_env(hf_cached))
    assert {name: r["sockets"] for name, r in results.items() if r["sockets"]} == {}
    assert results["hf: cached"]["outcome"].startswith("ok")
    assert results["hf: info"]["outcome"].startswith("ok")
    assert results["hf: not cached"]["outcome"].startswith("OfflineError: "), results


def test_no_network_is_reported_as_such_at_once_on_the_hf_path(hf_cached):
    results = run_cases(HF_CASES, user_env(hf_cached, zoo_offline=False), no_dns=True)
    assert results["hf: cached"]["outcome"].startswith("ok"), results
    assert_reported_unreachable(results["hf: not cached"]["outcome"])
    # At once: one failed name lookup answers for the whole process; nothing retries a dead network.
    assert sum(len(r["sockets"]) for r in results.values()) == 1, results
