"""``ZOO_OFFLINE=1`` opens no socket on the MedMNIST download (see tests/offline.py)."""
from tests.offline import run_cases, user_env

MEDMNIST_CASE = """
    def medmnist():
        from medical.datasets import MEDMNIST_MD5, fetch_medmnist
        return fetch_medmnist(sorted(MEDMNIST_MD5)[0])

    cases = {"medmnist": medmnist}
"""


def test_zoo_offline_opens_no_socket_on_the_medmnist_download(tmp_path):
    results = run_cases(MEDMNIST_CASE, user_env(tmp_path))
    assert results["medmnist"]["sockets"] == []
    outcome = results["medmnist"]["outcome"]  # found on this machine, or not and then offline
    assert outcome.startswith("OfflineError: ") or outcome.startswith("ok"), outcome
