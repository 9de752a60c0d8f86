"""Precision policy: fp32, or bf16/fp16 autocast where the device supports it."""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device: torch.device | str, precision: str = "fp32"):
    """Context manager running ops in ``precision``; fp32 is a no-op."""
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def needs_grad_scaler(device: torch.device | str, precision: str) -> bool:
    """fp16 on CUDA needs loss scaling; bf16 and CPU autocast do not."""
    return precision == "fp16" and torch.device(device).type == "cuda"


def auto_precision(device: torch.device | str) -> str:
    """The mixed precision a device trains well in: bf16 on capable CUDA, else fp32."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"
