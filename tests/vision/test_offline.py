"""``ZOO_OFFLINE=1`` opens no socket on the ``timm:`` and ``torchvision:`` pass-throughs nor the Fashion-MNIST
download (see tests/offline.py)."""
from tests.offline import run_cases, user_env

VISION_CASES = """
    import zoo

    def fashion_mnist():
        from vision.datasets import fashion_mnist
        return fashion_mnist()

    cases = {
        "timm:": lambda: zoo.load("timm:resnet18.a1_in1k"),
        "torchvision:": lambda: zoo.load("torchvision:resnet18"),
        "fashion-mnist": fashion_mnist,
    }
"""


def test_zoo_offline_opens_no_socket_on_the_vision_paths(tmp_path):
    results = run_cases(VISION_CASES, user_env(tmp_path))
    assert {name: r["sockets"] for name, r in results.items() if r["sockets"]} == {}
    for name in ("timm:", "torchvision:"):
        assert results[name]["outcome"].startswith("OfflineError: "), (name, results[name])
    outcome = results["fashion-mnist"]["outcome"]  # found on this machine, or not and then offline
    assert outcome.startswith("OfflineError: ") or outcome.startswith("ok"), outcome
