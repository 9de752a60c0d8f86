"""The shared tensor/autograd layer: where and how tensors run.

``backends.get(name)`` returns a :class:`Backend`; ``backends.available()`` lists
the ones that import on this machine. Third parties add backends through the
entry-point group ``zoo.backends`` (the entry point names a Backend subclass).
This module imports no torch: backends load lazily.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol

__all__ = ["Backend", "Runner", "get", "available", "register", "names"]


class Runner(Protocol):
    """A prepared model: ``runner(inputs) -> outputs``."""

    def __call__(self, inputs: Any) -> Any: ...


class Backend(Protocol):
    """Where and how a module runs."""

    name: str
    can_train: bool

    def devices(self) -> list[str]: ...

    def prepare(self, module: Any, example_inputs: Any = None) -> Runner: ...


# name -> "module:attribute" of a Backend class; import happens on first use.
_BUILTIN = {
    "torch": "backends.torch_backend:TorchBackend",
    "torch-compile": "backends.compile_backend:TorchCompileBackend",
    "onnxruntime": "backends.onnx_backend:OnnxRuntimeBackend",
    "onnxruntime-int8": "backends.quantize:OnnxInt8Backend",
}
_registered: dict[str, str | Callable[[], Backend]] = dict(_BUILTIN)
_entry_points_loaded = False


def register(name: str, factory: str | Callable[[], Backend]) -> None:
    """Register a backend by ``"module:Class"`` path or zero-argument factory."""
    _registered[name] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="zoo.backends"):
        _registered.setdefault(ep.name, f"{ep.value}")


def names() -> list[str]:
    """All registered backend names, importable or not."""
    _load_entry_points()
    return sorted(_registered)


def get(name: str = "torch") -> Backend:
    """Return the backend called ``name``; raise ``KeyError`` listing known names."""
    _load_entry_points()
    if name not in _registered:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(names())}")
    factory = _registered[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(import_module(module), attr)
    return factory()


def available() -> list[str]:
    """Backends whose dependencies import on this machine."""
    usable = []
    for name in names():
        try:
            get(name)
        except ImportError:
            continue
        usable.append(name)
    return usable
