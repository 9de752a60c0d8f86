"""Parity checks: a converted runner must give the eager module's outputs.

Conversion (torch.compile, ONNX export) is only trusted after the candidate has
reproduced the eager outputs on example inputs of more than one batch size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch


class ParityError(RuntimeError):
    """A runner's outputs differ from eager PyTorch beyond the tolerance."""


@dataclass(frozen=True)
class Tolerance:
    """Pass when the largest absolute difference is <= ``atol``, or <= ``rtol`` × the largest reference magnitude.

    ``min_cosine`` (for quantized runners, whose outputs differ by design): pass instead when every output
    row's cosine similarity to eager's is at least this."""

    atol: float = 1e-4
    rtol: float = 1e-4
    min_cosine: float | None = None

    def passes(self, max_abs: float, ref_scale: float, cosine: float = 1.0) -> bool:
        if self.min_cosine is not None:
            return cosine >= self.min_cosine
        return max_abs <= self.atol or max_abs <= self.rtol * ref_scale


@dataclass
class ParityReport:
    """What a parity check compared and found (JSON-ready with :meth:`to_dict`)."""

    name: str
    backend: str
    tolerance: Tolerance
    batches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(b["max_abs_diff"] for b in self.batches)

    @property
    def passed(self) -> bool:
        return all(b["passed"] for b in self.batches)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "tolerance": asdict(self.tolerance),
                "max_abs_diff": self.max_abs_diff, "passed": self.passed, "batches": self.batches}


def _shapes(inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return {k: list(v.shape) for k, v in inputs.items()}
    return list(inputs.shape)


def _call(fn: Callable, inputs: Any) -> torch.Tensor:
    """``fn``'s output as float32 on the CPU; several outputs (a recurrent step's action and state) side by side,
    one row per batch item, so that every one of them is compared."""
    out = fn(**inputs) if isinstance(inputs, dict) else fn(inputs)
    if isinstance(out, (tuple, list)):
        return torch.cat([o.detach().float().cpu().reshape(len(o), -1) for o in out], dim=1)
    return out.detach().float().cpu()


def check_parity(reference: Callable, candidate: Callable, examples: Sequence[Any], *, name: str, backend: str,
                 tolerance: Tolerance = Tolerance()) -> ParityReport:
    """Run both on every example batch; raise :class:`ParityError` naming ``name`` and the largest difference."""
    report = ParityReport(name, backend, tolerance)
    with torch.inference_mode():
        for inputs in examples:
            expected, got = _call(reference, inputs), _call(candidate, inputs)
            if expected.shape != got.shape:
                raise ParityError(f"{name} on {backend}: output shape {tuple(got.shape)} for inputs "
                                  f"{_shapes(inputs)}, eager gives {tuple(expected.shape)}")
            max_abs = float((expected - got).abs().max()) if expected.numel() else 0.0
            scale = float(expected.abs().max()) if expected.numel() else 0.0
            cosine = _min_row_cosine(expected, got)
            report.batches.append({"inputs": _shapes(inputs), "max_abs_diff": max_abs, "ref_max_abs": scale,
                                   "min_cosine": cosine, "passed": tolerance.passes(max_abs, scale, cosine)})
    if not report.passed:
        worst = max(report.batches, key=lambda b: b["max_abs_diff"])
        if tolerance.min_cosine is not None:
            worst = min(report.batches, key=lambda b: b["min_cosine"])
            raise ParityError(f"{name} on {backend} does not match eager PyTorch: an output row's cosine similarity "
                              f"is {worst['min_cosine']:.4f} (inputs {worst['inputs']}), allowed >= {tolerance.min_cosine:g}")
        raise ParityError(f"{name} on {backend} does not match eager PyTorch: largest difference "
                          f"{worst['max_abs_diff']:.3g} (inputs {worst['inputs']}, outputs up to {worst['ref_max_abs']:.3g}); "
                          f"allowed {tolerance.atol:g} absolute or {tolerance.rtol:g} relative")
    return report


def _min_row_cosine(expected: torch.Tensor, got: torch.Tensor) -> float:
    """The smallest cosine similarity between matching rows (one row per batch item)."""
    if not expected.numel():
        return 1.0
    rows = torch.nn.functional.cosine_similarity(expected.reshape(len(expected), -1).double(),
                                                 got.reshape(len(got), -1).double(), dim=1, eps=1e-12)
    return float(rows.min())
