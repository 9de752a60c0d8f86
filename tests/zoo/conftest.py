"""Fixtures of the core tests: the toy domain in place of the installed ones."""
from __future__ import annotations

import pytest

from tests.zoo import toy
from zoo import registry as registry_module


@pytest.fixture
def toy_registry(tmp_path_factory, monkeypatch):
    """The process-wide registry replaced by one holding only the toy domain (restored after the test)."""
    registry = toy.toy_registry(tmp_path_factory.mktemp("toy_weights"))
    monkeypatch.setattr(registry_module, "_registry", registry)
    return registry
