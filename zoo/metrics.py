"""Quality metrics shared by every domain's recipes and suites (torch tensors in, floats out)."""
from __future__ import annotations

import torch


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[true, predicted]`` counts."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def macro_f1(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in targets or predictions."""
    cm = confusion_matrix(predictions, targets, num_classes).double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    present = (support + predicted) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """accuracy, macro-F1 and (with more than 5 classes) top-5 accuracy from logits."""
    targets = targets.long()
    predictions = logits.argmax(dim=-1)
    num_classes = logits.shape[-1]
    metrics = {
        "accuracy": float((predictions == targets).double().mean()),
        "macro_f1": macro_f1(predictions, targets, num_classes),
    }
    if num_classes > 5:
        top5 = logits.topk(5, dim=-1).indices
        metrics["top5"] = float((top5 == targets[:, None]).any(dim=-1).double().mean())
    return metrics


def top_k_predictions(logits: torch.Tensor, labels: list[str] | None, k: int = 5) -> list[dict]:
    """Per row of logits: ``{"label", "index", "score", "top_k": [(label, score), ...]}`` with softmax scores."""
    probs = logits.float().softmax(dim=-1)
    scores, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    names = labels or [str(i) for i in range(probs.shape[-1])]
    return [
        {
            "label": names[int(idx[0])],
            "index": int(idx[0]),
            "score": float(score[0]),
            "top_k": [(names[int(i)], float(s)) for i, s in zip(idx, score)],
        }
        for idx, score in zip(indices, scores)
    ]


def detection_map(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    """COCO box mAP (pycocotools' ``COCOeval``): ``map`` over IoU .50:.95 and ``map50`` at IoU .50.

    ``predictions``: per image ``{"boxes" [N, 4] XYXY, "scores" [N], "labels" [N]}``; ``targets``: per image
    ``{"boxes", "labels"}`` (same order). Tensors or arrays. No ground-truth box at all gives NaN.
    """
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rows(boxes) -> np.ndarray:
        boxes = np.asarray(torch.as_tensor(boxes).detach().cpu().double()).reshape(-1, 4)
        return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])  # XYXY -> COCO's XYWH

    images, truths, found, categories = [], [], [], set()
    for image_id, (prediction, target) in enumerate(zip(predictions, targets), start=1):
        images.append({"id": image_id})
        labels = torch.as_tensor(target["labels"]).tolist()
        for box, label in zip(rows(target["boxes"]), labels):
            truths.append({"id": len(truths) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0,
                           "bbox": box.tolist(), "area": float(box[2] * box[3])})
        categories.update(labels)
        scores = torch.as_tensor(prediction["scores"]).tolist()
        for box, score, label in zip(rows(prediction["boxes"]), scores, torch.as_tensor(prediction["labels"]).tolist()):
            found.append({"image_id": image_id, "category_id": int(label), "bbox": box.tolist(), "score": float(score)})
    if not truths:
        return {"map": float("nan"), "map50": float("nan")}
    if not found:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {"images": images, "annotations": truths, "categories": [{"id": c} for c in sorted(categories)]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(found), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": max(0.0, float(evaluation.stats[0])), "map50": max(0.0, float(evaluation.stats[1]))}


def segmentation_scores(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int,
                        ignore_index: int = 255) -> dict[str, float]:
    """``miou`` (mean over the classes present in the targets or the predictions) and ``pixel_accuracy`` of
    class-index masks ``[..., H, W]``; target pixels equal to ``ignore_index`` are left out."""
    keep = targets != ignore_index
    matrix = confusion_matrix(predictions[keep].long(), targets[keep].long(), num_classes).double()
    true_positive = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    present = union > 0
    iou = true_positive[present] / union[present]
    total = matrix.sum()
    return {"miou": iou.mean().item() if present.any() else float("nan"),
            "pixel_accuracy": (true_positive.sum() / total).item() if total else float("nan")}
