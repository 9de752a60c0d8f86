"""Segmentation metrics on label maps: Dice and the 95th-percentile Hausdorff distance (in mm)."""
from __future__ import annotations

import numpy as np


def dice(prediction: np.ndarray, target: np.ndarray, label: int) -> float:
    """Dice overlap of one label; 1.0 when neither map has it."""
    p, t = prediction == label, target == label
    denominator = int(p.sum()) + int(t.sum())
    return 1.0 if denominator == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denominator


def hd95(prediction: np.ndarray, target: np.ndarray, label: int, spacing=(1.0, 1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances (mm) of one label, by Euclidean distance transforms.

    0.0 when neither map has the label; ``inf`` when only one does.
    """
    from scipy import ndimage

    p, t = prediction == label, target == label
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("inf")
    p_surface = p & ~ndimage.binary_erosion(p)
    t_surface = t & ~ndimage.binary_erosion(t)
    to_target = ndimage.distance_transform_edt(~t_surface, sampling=spacing)
    to_prediction = ndimage.distance_transform_edt(~p_surface, sampling=spacing)
    distances = np.concatenate([to_target[p_surface], to_prediction[t_surface]])
    return float(np.percentile(distances, 95))


def segmentation_scores(prediction: np.ndarray, target: np.ndarray, labels: list[str], spacing=(1.0, 1.0, 1.0),
                        with_hd95: bool = True) -> dict[str, float]:
    """Per foreground label ``dice_NAME`` (and ``hd95_NAME``), plus their means ``dice`` and ``hd95``.

    A label found in only one of the maps has no finite HD95; it counts as the
    volume's diagonal (mm), the worst possible, so means stay finite.
    """
    if prediction.shape != target.shape:
        from zoo.errors import InputError

        raise InputError(f"expected a prediction of the target's shape {target.shape}, got {prediction.shape}")
    scores: dict[str, float] = {}
    diagonal = float(np.linalg.norm(np.asarray(target.shape) * np.asarray(spacing, dtype=float)))
    for index, name in enumerate(labels[1:], start=1):
        scores[f"dice_{name}"] = dice(prediction, target, index)
        if with_hd95:
            distance = hd95(prediction, target, index, spacing)
            scores[f"hd95_{name}"] = distance if np.isfinite(distance) else diagonal
    scores["dice"] = float(np.mean([scores[f"dice_{n}"] for n in labels[1:]]))
    if with_hd95:
        scores["hd95"] = float(np.mean([scores[f"hd95_{n}"] for n in labels[1:]]))
    return {"dice": scores.pop("dice"), **({"hd95": scores.pop("hd95")} if with_hd95 else {}), **scores}
