"""``zoo.Model``: an ``nn.Module`` that carries its card, transform and predict."""
from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from backends.device import to_device
from backends.parity import Tolerance
from backends.state import save_state
from zoo.atomic import atomic_path
from zoo.card import CARD_FILE, WEIGHTS_FILE, ModelCard, check_file_name
from zoo.errors import InputError


class TaskAdapter(ABC):
    """Turns raw inputs into a batch and network outputs into domain predictions.

    Domains subclass this per task and register it with a ``TaskSpec``; it is
    rebuilt from the card and the card's files (``{name: local path}``, verified
    by whoever loaded the model), so a saved model predicts the same way.
    """

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        self.card = card
        self.paths: dict[str, Path] = dict(files or {})

    def path(self, name: str) -> Path:
        """The verified local file the card pins as ``name`` (a tokenizer)."""
        if name not in self.paths:
            raise InputError(f"the card of {self.card.id!r} pins no file {name!r} that was loaded with it "
                             f"(its files: {sorted(self.card.files)}); load the model with zoo.load")
        return self.paths[name]

    @property
    @abstractmethod
    def transform(self) -> Callable[[Any], torch.Tensor]:
        """Raw single input → network input tensor."""

    def read(self, path: str | os.PathLike) -> Any:
        """A raw input from a file: ``.npy`` arrays here (checked by :func:`zoo.arrays.read_npy`); domains add their formats."""
        from zoo.arrays import read_npy

        path = Path(path)
        if path.suffix != ".npy":
            raise InputError(f"expected a .npy file for task {self.card.task!r}, got {path.name}")
        return read_npy(path)

    def example_inputs(self) -> list[Any]:
        """Network inputs of two batch sizes for parity checks and export: random, from the card's input spec.

        Tasks whose inputs are not one float tensor (token ids, say) override it.
        """
        spec = self.card.input or {}
        if "shape" not in spec:
            raise InputError(f"task {self.card.task!r}: card {self.card.id!r} has no input shape to build "
                             "example inputs from")
        generator = torch.Generator().manual_seed(0)
        shape = [int(d) for d in spec["shape"]]
        return [torch.rand((n, *shape), generator=generator) for n in (2, 3)]

    def runtime_preprocessing(self) -> dict[str, Any]:
        """How :mod:`zoo.runtime` prepares raw inputs without torch: a batcher class by reference, and its spec.

        The default takes arrays of the card's input shape; image and text tasks name their own.
        """
        return {"ref": "zoo.runtime:ArrayBatcher",
                "spec": {"shape": list((self.card.input or {}).get("shape", [])), "dtype": "float32"}}

    def runtime_postprocessing(self) -> dict[str, Any]:
        """What :mod:`zoo.runtime` does with the network output: ``raw`` arrays, or ``classification`` (softmax top-k)."""
        return {"kind": "raw"}

    #: The dynamic dimensions of the exported graph's inputs; None: the batch (and token sequences' length).
    export_axes: tuple[int, ...] | None = None
    #: The exported graph's outputs, in the order the network returns them.
    export_outputs: tuple[str, ...] = ("output",)
    #: Whether ``zoo export`` writes the graph through the TorchScript tracer (one tensor in and out) instead of
    #: torch.export: detectors, whose dynamic height and width torch.export takes many minutes over.
    export_traced: bool = False

    def export_module(self, net: torch.nn.Module) -> torch.nn.Module:
        """The network as ``zoo export`` writes it: one tensor out (tasks whose networks return dicts wrap it)."""
        return net

    def write_onnx(self, network: torch.nn.Module, examples: list[Any], directory: Path, name: str) -> dict[str, Any]:
        """Write the network as ``directory/model.onnx`` and check it against eager on ``examples``: the parity
        report (raises ``ExportError`` or ``ParityError``). Tasks that export several graphs (a translator's
        encoder and decoder step) override it."""
        from backends.onnx_backend import OnnxRunner, export_onnx
        from backends.parity import check_parity

        export_onnx(network, examples[0], directory / "model.onnx", axes=self.export_axes, traced=self.export_traced,
                    output_names=self.export_outputs)
        return check_parity(network, OnnxRunner(directory / "model.onnx"), examples, name=name,
                            backend="onnxruntime", tolerance=self.parity_tolerance()).to_dict()

    def bundle_checks(self, model: Any, bundle: Any) -> dict[str, Any] | None:
        """Predictions of the exported ``bundle`` against ``model``'s on real inputs, recorded in parity.json
        (``{"passed": bool, ...}``); None: the tensor parity check is enough."""
        return None

    def parity_tolerance(self) -> Tolerance:
        """How close a converted runner's outputs must be to eager (fp32): 1e-4 absolute or relative."""
        return Tolerance()

    #: How the task's networks quantize to int8 (``zoo export --quantize int8``, backend ``onnxruntime-int8``):
    #: ``"dynamic"`` (transformer encoders, MLPs), ``"static"`` (QDQ, calibrated: CNNs; the adapter overrides
    #: :meth:`quantize_int8`), or None: not supported.
    int8: str | None = None
    #: The most quality the int8 bundle may lose against fp32, in the units of :meth:`int8_quality`'s metric.
    int8_tolerance: float = 0.01
    #: Dynamic int8 weights in a 7-bit range (:func:`backends.quantize.quantize_dynamic_int8`): for networks whose
    #: 8-bit weights saturate ONNX Runtime's kernels on CPUs without VNNI.
    int8_reduce_range: bool = False

    def quantize_int8(self, model: Any, source: Path, target: Path, *, calibration: str | None = None) -> dict[str, Any]:
        """Write the int8 version of the fp32 ONNX graph ``source`` (exported from ``model``) to ``target``;
        returns what was quantized, recorded as bundle.json's ``"quantization"``. Dynamic here; tasks with
        static quantization override it, drawing their calibration set from ``calibration`` (a dataset) or
        the model's own."""
        from backends.quantize import quantize_dynamic_int8

        if calibration is not None:
            raise InputError(f"{self.card.id}: task {self.card.task!r} quantizes dynamically and takes no "
                             f"calibration set, got {calibration!r}")
        return quantize_dynamic_int8(source, target, reduce_range=self.int8_reduce_range)

    def int8_quality(self, model: Any, fp32_bundle: Any, int8_bundle: Any) -> dict[str, Any]:
        """The task's quality metric of the fp32 and the int8 bundles on a real labelled set:
        ``{"metric", "dataset", "split", "samples", "fp32", "int8", "loss", "tolerance", "passed"}``."""
        raise InputError(f"task {self.card.task!r} measures no int8 quality")

    def int8_load_tolerance(self) -> Tolerance:
        """The check of an int8 runner against eager on example inputs at load (its measured quality is in the
        int8 bundle's parity.json): every output row's cosine similarity >= 0.98."""
        return Tolerance(min_cosine=0.98)

    #: Whether a ``zoo predict`` argument that names no file is the raw input itself (a sentence).
    literal_inputs: bool = False

    #: File endings :meth:`write` accepts (``zoo predict --out`` checks them before predicting).
    output_suffixes: tuple[str, ...] = ()
    #: Whether ``zoo predict --out FOLDER`` may write the predictions of several inputs (:meth:`write_folder`).
    writes_folders: bool = False
    #: The ending of the files :meth:`draw` writes (``zoo predict --draw``: ``<input stem><draw_suffix>``);
    #: None: the task draws nothing.
    draw_suffix: str | None = None

    def write(self, prediction: Any, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
        """Write one prediction to ``path`` in the task's file format (``zoo predict --out``).

        ``source`` is the input it was predicted from (a DICOM-SEG references its series).
        """
        raise InputError(f"task {self.card.task!r} does not write predictions to files; "
                         "drop --out to print them")

    def write_folder(self, predictions: Sequence[Any], folder: str | os.PathLike, *,
                     sources: Sequence[str | os.PathLike]) -> list[Path]:
        """Write the predictions of ``sources`` into ``folder`` (``zoo predict --out FOLDER``).

        By default one file per input, named by its stem and the first of :attr:`output_suffixes`;
        a task whose file format holds many predictions writes one file for all of them instead.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return [self.write(prediction, folder / f"{Path(source).stem}{self.output_suffixes[0]}", source=source)
                for prediction, source in zip(predictions, sources)]

    def draw(self, raw_input: Any, prediction: Any, path: str | os.PathLike) -> Path:
        """Write ``raw_input`` with ``prediction`` drawn over it to ``path`` (``zoo predict --draw``)."""
        raise InputError(f"task {self.card.task!r} does not draw its predictions; drop --draw")

    def describe(self, prediction: Any, top_k: int = 1) -> str:
        """One readable line for ``zoo predict``: labels with their scores (``top_k`` of them), a
        scalar (a discrete action) as itself, an array as its shape and first values."""
        import numpy as np

        if isinstance(prediction, Mapping) and "label" in prediction:
            ranked = prediction.get("top_k") or [(prediction["label"], prediction.get("score"))]
            return ", ".join(_shown(label) if score is None else f"{_shown(label)} {score:.4f}" for label, score in ranked[:top_k])
        array = np.asarray(prediction)
        if array.ndim == 0:
            return str(array.item())
        head = ", ".join(f"{value:.4g}" for value in array.ravel()[:4])
        return f"array {tuple(array.shape)} {array.dtype} [{head}{', ...' if array.size > 4 else ''}]"

    def batch(self, raw_inputs: Sequence[Any]) -> torch.Tensor:
        """Raw inputs → one batched tensor (or a dict of tensors, passed to the network as keywords)."""
        return torch.stack([self.transform(x) for x in raw_inputs])

    def predict(self, module: nn.Module, raw_inputs: Sequence[Any], *, device: torch.device, **options: Any) -> Any:
        """Raw inputs → predictions (called in eval and inference mode): batch, move to ``device`` (where
        the module runs), forward, postprocess.

        Domains override it to add options (a batch size) or to run in chunks.
        """
        if options:
            raise InputError(f"task {self.card.task!r} takes no predict options, got {sorted(options)}")
        inputs = self.batch(raw_inputs)
        if isinstance(inputs, Mapping):
            outputs = module(**{k: v.to(device) for k, v in inputs.items()})
        else:
            outputs = module(inputs.to(device))
        return self.postprocess(outputs)

    def files(self) -> dict[str, Path]:
        """Files the task needs beside the weights (a tokenizer, a vocabulary), by file name.

        ``Model.save`` copies them into the model directory and pins their sha256 in
        the card; ``zoo.load(directory)`` verifies them there and hands them back.
        """
        return {}

    @abstractmethod
    def postprocess(self, outputs: torch.Tensor) -> list[Any]:
        """Network outputs → one prediction per input."""


class Model(nn.Module):
    """A network plus what it needs to be used: card, transform, predict, save.

    Train it like any module; ``forward`` is the network's. ``predict`` takes raw
    inputs (a single one or a list) and returns domain outputs.
    """

    backend = "torch"

    def __init__(self, net: nn.Module, card: ModelCard, adapter: TaskAdapter):
        super().__init__()
        self.net = net
        self.card = card
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    @property
    def transform(self) -> Callable[[Any], torch.Tensor]:
        return self.adapter.transform

    @property
    def device(self) -> torch.device:
        """Where the network runs, so inputs go there: a converted model's runner says so itself."""
        if isinstance(self.net, RunnerNet):
            return self.net.device
        return next(self.net.parameters()).device

    @property
    def num_params(self) -> int:
        if isinstance(self.net, RunnerNet):  # a converted model counts the network it was made from
            return self.net.num_params
        return sum(p.numel() for p in self.net.parameters())

    def predict(self, raw_inputs: Any, **options: Any) -> Any:
        """Predict on one raw input or a list of them (a list in gives a list out).

        ``options`` go to the task adapter (e.g. ``batch_size`` for text).
        """
        single = not isinstance(raw_inputs, (list, tuple))
        items = [raw_inputs] if single else list(raw_inputs)
        if not items:
            return []
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                predictions = self.adapter.predict(self.net, items, device=self.device, **options)
        finally:
            self.train(was_training)
        return predictions[0] if single else predictions

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``weights.safetensors`` and ``card.json``; ``zoo.load(directory)`` reads them back."""
        from zoo.hashing import sha256_file

        directory = Path(directory)
        extra = self.adapter.files()
        for name in extra:  # the card names them: each must stay a plain file inside the directory
            if check_file_name(name) in (WEIGHTS_FILE, CARD_FILE):
                raise InputError(f"task file {name!r} of {self.card.id!r} would overwrite the model's own {name}")
        weights = directory / WEIGHTS_FILE
        # A single metadata key: safetensors orders several keys at random, which would change the file's hash.
        save_state(self.net.state_dict(), weights, metadata={"format": "pt"})
        self.card.params = self.num_params
        self.card.files = {
            WEIGHTS_FILE: {"sha256": sha256_file(weights), "size": weights.stat().st_size, "source": "local"}
        }
        for name, path in extra.items():  # e.g. a tokenizer: the directory stays self-contained
            target = directory / name
            if not (target.is_file() and not target.is_symlink() and os.path.samefile(path, target)):
                with atomic_path(target) as tmp:  # a rename replaces a symlink at target, never writes through it
                    shutil.copyfile(path, tmp)
            self.card.files[name] = {
                "sha256": sha256_file(target), "size": target.stat().st_size, "source": "local", "format": "raw"
            }
        self.card.save(directory)
        return directory

    def to_backend(self, name: str, **options: Any) -> "Model":
        """This model on another backend (``"torch-compile"``, ``"onnxruntime"``): the same card and ``predict``.

        Conversion is checked against eager PyTorch on example inputs of two batch
        sizes; :class:`zoo.errors.BackendError` names the model and the largest
        difference when they disagree, or says why the network cannot convert.
        The returned model runs inference only; its ``parity`` holds the check.
        """
        import backends
        from backends.onnx_backend import ExportError
        from backends.parity import ParityError, check_parity
        from zoo.errors import BackendError

        if name == "torch":
            return self
        try:
            backend = backends.get(name)
        except KeyError as e:
            raise BackendError(e.args[0]) from None
        except ImportError as e:
            raise BackendError(f"backend {name!r} is not installed here ({e}); pip install 'domain-zoo[export]'") from None
        self.eval()
        quantized = name.endswith("-int8")
        if quantized:
            require_int8(self.adapter)
        examples = [to_device(x, self.device) for x in self.adapter.example_inputs()]
        tolerance = self.adapter.int8_load_tolerance() if quantized else self.adapter.parity_tolerance()
        try:
            if quantized:  # the adapter says how (dynamic, or static with its calibration set)
                options = {"quantize": lambda fp32, int8: self.adapter.quantize_int8(self, fp32, int8), **options}
            runner = backend.prepare(self.net, examples[0], **options)
            report = check_parity(self.net, runner, examples, name=self.card.id, backend=name, tolerance=tolerance)
        except (ExportError, ParityError) as e:
            raise BackendError(f"{self.card.id}: {e}") from e
        converted = type(self)(RunnerNet(runner, self.device, self.num_params), self.card, self.adapter)
        converted.backend, converted.parity = name, report
        return converted.eval()

    def extra_repr(self) -> str:
        return f"id={self.card.id!r}, task={self.card.task!r}"


def require_int8(adapter: TaskAdapter) -> None:
    """Refuse, saying what exists, a model whose task has no int8 quantization."""
    from zoo.errors import BackendError

    if adapter.int8 is None:
        raise BackendError(f"{adapter.card.id}: task {adapter.card.task!r} has no int8 quantization: dynamic int8 "
                           "covers transformer encoders (text tasks) and MLP policies, static QDQ int8 image "
                           "classifiers (CNNs). Use the fp32 'onnxruntime' backend (or zoo export without "
                           "--quantize)")


class RunnerNet(nn.Module):
    """A backend's runner in the place of a network, so task adapters call it as they call the module."""

    def __init__(self, runner: Callable, device: torch.device, num_params: int):
        super().__init__()
        self.runner, self.device, self.num_params = runner, device, num_params

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.runner(kwargs) if kwargs else self.runner(*args)


def _shown(label: Any) -> str:
    """A label as ``zoo predict`` prints it: quoted when it holds a comma (ImageNet's do), so a list stays readable."""
    return f'"{label}"' if "," in str(label) else str(label)
