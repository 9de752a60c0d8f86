"""Intensity transforms: CT window presets, MR percentile scaling, and the model input transform."""
from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import InputError

# CT display windows as (width, level) in HU; values from common radiology practice
# (e.g. Radiopaedia's "Windowing (CT)" article).
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "abdomen": (400.0, 40.0),
    "bone": (1800.0, 400.0),
    "brain": (80.0, 40.0),
}


def window(array: np.ndarray, preset: str | None = None, *, width: float | None = None, level: float | None = None) -> np.ndarray:
    """Map HU through a display window to [0, 1] (float32): a preset name, or ``width`` and ``level``."""
    if preset is not None:
        if preset not in CT_WINDOWS:
            raise InputError(f"expected a CT window preset in {sorted(CT_WINDOWS)}, got {preset!r}")
        width, level = CT_WINDOWS[preset]
    if width is None or level is None or width <= 0:
        raise InputError(f"expected a preset, or a positive width and a level, got width={width}, level={level}")
    low = level - width / 2
    return np.clip((np.asarray(array, dtype=np.float32) - low) / width, 0.0, 1.0)


def percentile_scale(array: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Scale to [0, 1] between two percentiles (MR, whose intensities have no absolute unit)."""
    array = np.asarray(array, dtype=np.float32)
    low, high = np.percentile(array, [lower, upper])
    if high <= low:
        return np.zeros_like(array)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def normalize(array: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """The model input normalisation a card's ``preprocessing`` names.

    ``{"intensity": "window", "window": [width, level]}`` maps to [-1, 1] through
    the window; ``{"intensity": "percentile"}`` percentile-scales to [-1, 1].
    """
    kind = preprocessing.get("intensity", "window")
    if kind == "window":
        width, level = preprocessing["window"]
        scaled = window(array, width=width, level=level)
    elif kind == "percentile":
        scaled = percentile_scale(array, *preprocessing.get("percentiles", (0.5, 99.5)))
    else:
        raise InputError(f"expected preprocessing intensity 'window' or 'percentile', got {kind!r}")
    return scaled * 2.0 - 1.0
