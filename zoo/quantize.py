"""``zoo export --quantize int8``: an fp32 bundle made int8, its quality measured, refused when it loses too much.

The int8 bundle is the fp32 one with ``model.onnx`` quantized as the task adapter says
(:meth:`~zoo.model.TaskAdapter.quantize_int8`: dynamic for encoders and MLPs, static QDQ with a calibration set for
CNNs), ``bundle.json`` saying how (``"quantization"``: the quantized operators, those left fp32, the calibration
samples) and ``parity.json``
holding, beside the fp32 export's parity with eager, ``"quality"``: the task's metric of the fp32 and the int8
bundle on a real labelled set (the task adapter's :meth:`~zoo.model.TaskAdapter.int8_quality`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.atomic import replace_folder
from zoo.errors import QualityLossError
from zoo.runtime import BUNDLE_FILE, MANIFEST_FILE, DIGEST_FILE, MODEL_FILE, load_bundle, seal

QUANTIZATIONS = ("int8",)
ALLOW_FLAG = "--allow-quality-loss"


def quantize_bundle(model: Any, fp32_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                    allow_quality_loss: bool = False, calibration: str | None = None) -> Path:
    """Write the int8 version of the fp32 bundle ``fp32_dir`` (exported from ``model``) to ``out_dir``.

    ``calibration``: the dataset a statically quantized model calibrates on, instead of its own (the one its card
    was trained on).

    Raises :class:`~zoo.errors.QualityLossError`, writing nothing, when the int8 bundle loses more than the
    task's ``int8_tolerance``, unless ``allow_quality_loss`` (then parity.json records that it was allowed)."""
    from zoo.model import require_int8

    require_int8(model.adapter)
    fp32_dir, out_dir = Path(fp32_dir), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-int8-", dir=out_dir.parent))
    try:
        for path in fp32_dir.iterdir():
            if path.name not in (MODEL_FILE, MANIFEST_FILE, DIGEST_FILE):
                shutil.copyfile(path, staging / path.name)
        report = model.adapter.quantize_int8(model, fp32_dir / MODEL_FILE, staging / MODEL_FILE,
                                             calibration=calibration)
        _update_json(staging / BUNDLE_FILE, quantization=report)
        seal(staging)
        quality = model.adapter.int8_quality(model, load_bundle(fp32_dir), load_bundle(staging))
        if not quality["passed"]:
            if not allow_quality_loss:
                raise QualityLossError(_loss_message(model.card.id, quality) + "; nothing written. Pass "
                                       f"{ALLOW_FLAG} (allow_quality_loss=True) to write it anyway")
            quality["allowed_by"] = ALLOW_FLAG
        _update_json(staging / "parity.json", quality=quality)
        seal(staging)
        return replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def quality_record(metric: str, dataset: str, split: str, samples: int, fp32: float, int8: float, tolerance: float,
                   **extra: Any) -> dict[str, Any]:
    """The ``"quality"`` record of parity.json (what :meth:`zoo.model.TaskAdapter.int8_quality` returns); the
    metric is higher-is-better and ``loss`` (fp32 - int8) passes up to ``tolerance``."""
    loss = fp32 - int8
    return {"metric": metric, "dataset": dataset, "split": split, "samples": samples, "fp32": fp32, "int8": int8,
            **extra, "loss": loss, "tolerance": tolerance, "passed": loss <= tolerance}


def quality_summary(model_id: str, quality: dict[str, Any]) -> str:
    """One line: the metric of fp32 and int8 on which data, and whether the loss is within the tolerance."""
    if quality["passed"]:
        return (f"{model_id} int8: {quality['metric']} {quality['int8']:.4f} (fp32 {quality['fp32']:.4f}) on "
                f"{quality['samples']} samples of {quality['dataset']} {quality['split']}, within the tolerance "
                f"{quality['tolerance']:g}")
    return _loss_message(model_id, quality) + f"; written anyway ({ALLOW_FLAG})"


def _loss_message(model_id: str, quality: dict[str, Any]) -> str:
    return (f"{model_id}: the int8 model loses {quality['loss']:.4f} {quality['metric']} on {quality['samples']} "
            f"samples of {quality['dataset']} {quality['split']} (fp32 {quality['fp32']:.4f}, int8 "
            f"{quality['int8']:.4f}); the model allows a loss of at most {quality['tolerance']:g}")


def _update_json(path: Path, **fields: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, **fields}, indent=2) + "\n", encoding="utf-8")
