"""Zoo calls in a fresh interpreter, as a user runs them with ``ZOO_OFFLINE=1`` or without DNS.

``HF_HUB_OFFLINE`` is unset there (tests/conftest.py sets it for every test, which would hide the bug).
With ``ZOO_OFFLINE=1`` an audit hook records, and blocks, every connection and name lookup; without DNS,
``socket.getaddrinfo`` fails as on a machine with no network. ``setup`` is Python code that defines
``cases = {name: callable}``; each case's outcome and the sockets it opened (or names it looked up) come back.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BLOCK_SOCKETS = '''
    import sys

    opened = []

    def block_sockets(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            opened.append(f"{event}{args!r}")
            raise RuntimeError("socket blocked by the test")

    sys.addaudithook(block_sockets)
'''

NO_DNS = '''
    import socket

    opened = []

    def no_network(host, *args, **kwargs):
        opened.append(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    socket.getaddrinfo = no_network  # a machine without DNS, as the user's was
'''

RUN_CASES = '''
    import json

    results = {}
    for name, case in cases.items():
        before = len(opened)
        # huggingface_hub looks its agent registry up once per process: each case must meet that lookup.
        from huggingface_hub.utils import _detect_agent
        _detect_agent._registry = None
        try:
            outcome = f"ok {case()!r:.40}"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        results[name] = {"outcome": outcome, "sockets": opened[before:]}
    print(json.dumps(results))
'''


def user_env(tmp_path: Path, *, zoo_offline: bool = True) -> dict:
    """The environment of a user with fresh caches under ``tmp_path`` (``HF_HOME`` is ``tmp_path / "hf"``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ZOO_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), ZOO_HOME=str(tmp_path / "zoo"), TORCH_HOME=str(tmp_path / "torch"),
               XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    if zoo_offline:
        env["ZOO_OFFLINE"] = "1"
    return env


def run_cases(setup: str, env: dict, *, no_dns: bool = False) -> dict:
    """Run ``setup``'s cases in a fresh interpreter under ``env``; ``{name: {outcome, sockets}}``."""
    code = textwrap.dedent(NO_DNS if no_dns else BLOCK_SOCKETS) + textwrap.dedent(setup) + textwrap.dedent(RUN_CASES)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def assert_reported_unreachable(outcome: str) -> None:
    """An OfflineError that says the network is unreachable, and how to go offline on purpose."""
    assert outcome.startswith("OfflineError: "), outcome
    assert "the network is unreachable (huggingface.co cannot be resolved" in outcome, outcome
    assert "ZOO_OFFLINE is set" not in outcome and "ZOO_OFFLINE=1" in outcome, outcome
