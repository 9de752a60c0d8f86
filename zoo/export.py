"""``zoo export``: a model as a portable bundle that :mod:`zoo.runtime` runs without torch.

The bundle is written into a temporary folder beside ``out_dir`` and moved into
place when complete, so a failed export leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.atomic import replace_folder
from zoo.errors import BackendError, InputError
from zoo.runtime import BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION, seal

FORMATS = ("onnx",)


def export(model_or_id: Any, out_dir: str | os.PathLike, *, format: str = "onnx", overwrite: bool = False,
           quantize: str | None = None, allow_quality_loss: bool = False, calibration: str | None = None) -> Path:
    """Write ``model.onnx``, ``bundle.json``, ``card.json``, ``parity.json`` (+ preprocessing files) to ``out_dir``,
    sealed by ``manifest.json`` and its digest ``manifest.sha256`` (see :mod:`zoo.runtime`).

    ``quantize="int8"``: the graph quantized as the task says (dynamic, or static QDQ calibrated on the model's own
    dataset or on ``calibration``), its quality measured (:mod:`zoo.quantize`)."""
    from backends.onnx_backend import ExportError
    from backends.parity import ParityError
    from zoo.hub import load
    from zoo.model import require_int8
    from zoo.quantize import QUANTIZATIONS, quantize_bundle
    from zoo.runtime import load_bundle

    if format not in FORMATS:
        raise InputError(f"export format must be one of {FORMATS}, got {format!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InputError(f"--quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir} exists and is not empty; choose another --out or pass --overwrite")
    model = load(model_or_id, device="cpu") if isinstance(model_or_id, (str, os.PathLike)) else model_or_id
    model = model.cpu().eval()
    if quantize:
        require_int8(model.adapter)  # before the minutes of an export that could not be quantized
    network = model.adapter.export_module(model.net).eval()  # first: it refuses what cannot be exported
    examples = model.adapter.example_inputs()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        try:
            parity = model.adapter.write_onnx(network, examples, staging, model.card.id)
        except (ExportError, ParityError) as e:
            raise BackendError(f"{model.card.id}: {e}") from e
        for name, path in model.adapter.files().items():  # a tokenizer, for instance
            shutil.copyfile(path, staging / name)
        (staging / "card.json").write_text(json.dumps(model.card.to_dict(), indent=2) + "\n", encoding="utf-8")
        (staging / "parity.json").write_text(json.dumps(parity, indent=2) + "\n", encoding="utf-8")
        bundle = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "id": model.card.id,
            "task": model.card.task,
            "inputs": _input_specs(examples[0], model.adapter.export_axes),
            "preprocessing": model.adapter.runtime_preprocessing(),
            "postprocessing": model.adapter.runtime_postprocessing(),
        }
        (staging / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
        seal(staging)
        checks = model.adapter.bundle_checks(model, load_bundle(staging))
        if checks is not None:
            _record_checks(model.card.id, staging, parity, checks)
        if quantize:
            return quantize_bundle(model, staging, out_dir, allow_quality_loss=allow_quality_loss,
                                   calibration=calibration)
        return replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record_checks(model_id: str, staging: Path, parity: dict[str, Any], checks: dict[str, Any]) -> None:
    """The bundle's predictions vs eager (a task's own measure) added to parity.json; the bundle sealed again."""
    if not checks.get("passed"):
        raise BackendError(f"{model_id}: the exported bundle's predictions differ from eager PyTorch's: {checks}")
    (staging / "parity.json").write_text(json.dumps({**parity, "predictions": checks}, indent=2) + "\n",
                                         encoding="utf-8")
    seal(staging)


def _input_specs(example: Any, axes: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Name, dtype and shape (``None`` for dynamic dimensions: ``axes``, or the backend's default) of each input."""
    from backends.onnx_backend import dynamic_axes, input_names

    tensors = list(example.values()) if isinstance(example, dict) else [example]
    specs = []
    for name, tensor in zip(input_names(example), tensors):
        dynamic = dynamic_axes(tensor) if axes is None else axes
        shape = [None if d in dynamic else int(n) for d, n in enumerate(tensor.shape)]
        specs.append({"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape})
    return specs
