"""Test-wide guards: no network, an isolated zoo home, offline Hugging Face; the toy bundle to tamper with."""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and not _is_local(address[0]):
        raise RuntimeError(f"network access in a test: connect to {address!r} blocked by tests/conftest.py")


def _guarded_connect(self, address):
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        raise RuntimeError(f"network access in a test: DNS lookup of {host!r} blocked by tests/conftest.py")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config):
    # Module-scoped fixtures run before the per-test home below: keep them off the user's cache too.
    config.session_zoo_home = os.environ["ZOO_HOME"] = tempfile.mkdtemp(prefix="zoo-test-home-")
    os.environ["HF_HUB_OFFLINE"] = "1"
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo


def pytest_unconfigure(config):
    shutil.rmtree(config.session_zoo_home, ignore_errors=True)  # a run would leave its cache behind


@pytest.fixture(autouse=True)
def isolated_zoo_home(tmp_path_factory, monkeypatch):
    """Each test gets its own cache, and Hugging Face never goes online."""
    home = tmp_path_factory.mktemp("zoo_home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    return home


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The toy model (tests/zoo/toy.py) exported, once per test module."""
    from tests.zoo import toy
    from zoo.export import export

    with toy.registered():
        return export(toy.MODEL_ID, tmp_path_factory.mktemp("export") / "toy")


@pytest.fixture
def bundle(exported, tmp_path):
    """A copy of the toy bundle, the test's to tamper with."""
    return shutil.copytree(exported, tmp_path / "bundle")
