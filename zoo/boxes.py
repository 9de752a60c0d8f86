"""Detection decoding in numpy, for :mod:`zoo.runtime`: raw head outputs → boxes, scores, labels (no torch).

An exported detector (``zoo export`` of an ``object-detection`` model) gives, per picture, one row per anchor:
the class logits, the box regression, (FCOS) the centerness logit, the anchor box ``x1, y1, x2, y2`` in the
network input's pixels, and the index of its feature level. :func:`detect` decodes them as torchvision's
``FCOS``, ``RetinaNet`` and ``SSD`` ``postprocess_detections`` do (score threshold, best candidates per level
or per class, box decoding, clipping to the resized picture, class-aware NMS, ``detections_per_img``), and
scales the boxes back to the input picture as ``GeneralizedRCNNTransform.postprocess`` does.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

DECODERS = ("fcos", "retinanet", "ssd")
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's BoxCoder: exp() of larger width/height deltas is clamped


def extra_columns(decoder: str) -> int:
    """Columns a row holds beside the class logits: box regression (4), centerness (FCOS), anchor (4), level."""
    return 4 + (decoder == "fcos") + 4 + 1


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_linear(codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """FCOS (torchvision's ``BoxLinearCoder(normalize_by_size=True)``): distances from the anchor's centre to the
    four edges, in anchor sizes."""
    ctr_x = 0.5 * (anchors[:, 0] + anchors[:, 2])
    ctr_y = 0.5 * (anchors[:, 1] + anchors[:, 3])
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    codes = codes * np.stack((width, height, width, height), axis=-1)
    return np.stack((ctr_x - codes[:, 0], ctr_y - codes[:, 1], ctr_x + codes[:, 2], ctr_y + codes[:, 3]), axis=-1)


def decode_deltas(codes: np.ndarray, anchors: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """RetinaNet and SSD (torchvision's ``BoxCoder.decode_single``): centre shifts and log-scale size changes,
    divided by ``weights``."""
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ctr_x, ctr_y = anchors[:, 0] + 0.5 * width, anchors[:, 1] + 0.5 * height
    wx, wy, ww, wh = (np.float32(w) for w in weights)
    dx, dy = codes[:, 0] / wx, codes[:, 1] / wy
    dw = np.minimum(codes[:, 2] / ww, np.float32(BBOX_XFORM_CLIP))
    dh = np.minimum(codes[:, 3] / wh, np.float32(BBOX_XFORM_CLIP))
    pred_x, pred_y = dx * width + ctr_x, dy * height + ctr_y
    half_w, half_h = np.float32(0.5) * np.exp(dw) * width, np.float32(0.5) * np.exp(dh) * height
    return np.stack((pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h), axis=-1)


def clip_to_image(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.stack((boxes[:, 0].clip(0, width), boxes[:, 1].clip(0, height),
                     boxes[:, 2].clip(0, width), boxes[:, 3].clip(0, height)), axis=-1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int | None = None) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best score first (torchvision's ``nms``: a box
    goes when its IoU with a kept, better one is above ``iou_threshold``). ``limit``: stop after that many (the
    first ``limit`` of the full run: each kept box depends only on better ones)."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size and (limit is None or len(keep) < limit):
        best, rest = order[0], order[1:]
        keep.append(best)
        x1, y1 = np.maximum(boxes[best, 0], boxes[rest, 0]), np.maximum(boxes[best, 1], boxes[rest, 1])
        x2, y2 = np.minimum(boxes[best, 2], boxes[rest, 2]), np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):  # two empty boxes: 0/0, NaN, kept (as torchvision)
            overlapping = inter / (areas[best] + areas[rest] - inter) > iou_threshold
        order = rest[~overlapping]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                limit: int | None = None) -> np.ndarray:
    """NMS within each label (torchvision's ``batched_nms``: boxes of different labels are moved apart)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = labels.astype(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold, limit)


def _best(scores: np.ndarray, threshold: float, top: int) -> np.ndarray:
    """Indices into ``scores`` (flat) above ``threshold``, the ``top`` best, best first."""
    above = np.flatnonzero(scores > threshold)
    return above[np.argsort(-scores[above], kind="stable")[:top]]


def _candidates(rows: np.ndarray, spec: Mapping[str, Any], classes: int):
    """Scores, labels, anchor rows of the candidates the decoder keeps before NMS (its threshold and top-k)."""
    logits = rows[:, :classes]
    threshold, top = float(spec["score_thresh"]), int(spec["topk_candidates"])
    if spec["decoder"] == "ssd":  # softmax over classes; the best ``top`` per class, background (0) left out
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        picked = [(np.full(len(i), label), i) for label in range(1, classes)
                  for i in [_best(probs[:, label], threshold, top)]]
        labels = np.concatenate([p[0] for p in picked]).astype(np.int64)
        anchors = np.concatenate([p[1] for p in picked]).astype(np.int64)
        return probs[anchors, labels], labels, anchors
    scores = sigmoid(logits)
    if spec["decoder"] == "fcos":
        scores = np.sqrt(scores * sigmoid(rows[:, classes + 4:classes + 5]))
    levels = rows[:, -1]
    picked = []
    for level in np.unique(levels):  # the best ``top`` (anchor, class) pairs of each feature level
        offset = int(np.argmax(levels == level))
        flat = scores[levels == level].ravel()
        picked.append(offset * classes + _best(flat, threshold, top))
    flat_index = np.concatenate(picked).astype(np.int64)
    return scores.ravel()[flat_index], flat_index % classes, flat_index // classes


def detect(rows: np.ndarray, spec: Mapping[str, Any], resized: tuple[int, int],
           original: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One picture's ``[anchors, columns]`` rows → ``(boxes [N, 4] in the original picture's pixels, scores [N],
    labels [N] class indices)``, best first. ``resized``: the picture's size inside the network (before padding)."""
    decoder = spec["decoder"]
    classes = rows.shape[1] - extra_columns(decoder)
    scores, labels, anchor_rows = _candidates(rows, spec, classes)
    codes, anchors = rows[anchor_rows, classes:classes + 4], rows[anchor_rows, -5:-1]
    if decoder == "fcos":
        boxes = decode_linear(codes, anchors)
    else:
        boxes = decode_deltas(codes, anchors, tuple(spec["box_weights"]))
    boxes = clip_to_image(boxes, *resized)
    keep = batched_nms(boxes, scores, labels, float(spec["nms_thresh"]), int(spec["detections_per_img"]))
    ratio_h, ratio_w = (np.float32(o) / np.float32(r) for o, r in zip(original, resized))
    scale = np.asarray([ratio_w, ratio_h, ratio_w, ratio_h], dtype=np.float32)
    return boxes[keep] * scale, scores[keep].astype(np.float32), labels[keep]
