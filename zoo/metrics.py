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

    evaluation, constant = _coco_evaluation(predictions, targets)
    if constant is not None:
        return constant
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": max(0.0, float(evaluation.stats[0])), "map50": max(0.0, float(evaluation.stats[1]))}


def _coco_evaluation(predictions: list[dict], targets: list[dict]):
    """``(evaluation, None)``: pycocotools' ``COCOeval`` of box ``predictions`` against ``targets`` (images
    numbered from 1 in order), before ``evaluate``; or ``(None, scores)`` when there is nothing to match (no
    truth: NaN; no prediction: 0)."""
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
        return None, {"map": float("nan"), "map50": float("nan")}
    if not found:
        return None, {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": truths, "categories": [{"id": c} for c in sorted(categories)]}
        truth.createIndex()
        return COCOeval(truth, truth.loadRes(found), iouType="bbox"), None


class DetectionMatches:
    """COCO's per-image matching of boxes, done once, scored again on any multiset of the images.

    A bootstrap over test images needs mAP on many resamples; pycocotools matches boxes within each
    image, so a resample's result follows from the per-image matches of ``COCOeval.evaluate`` alone.
    ``scores(indices)`` re-accumulates them, each image counted as often as it is drawn: what
    ``COCOeval.accumulate`` on the resampled images gives (only the order among detections of equal score
    can differ), vectorised, so a thousand resamples take seconds, not the minutes of re-running COCOeval.
    ``scores()`` over every image once equals :func:`detection_map`.
    """

    def __init__(self, predictions: list[dict], targets: list[dict]):
        import contextlib
        import io

        import numpy as np

        self.n_images = len(targets)
        evaluation, self.constant = _coco_evaluation(predictions, targets)
        self.categories: list[tuple] = []
        if self.constant is not None:
            return
        params = evaluation.params
        params.areaRng, params.areaRngLbl, params.maxDets = params.areaRng[:1], ["all"], params.maxDets[-1:]
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation.evaluate()
        self.recall_thresholds = params.recThrs
        n_thresholds, per_category = len(params.iouThrs), len(params.imgIds)
        for k in range(len(params.catIds)):
            found = [(i, e) for i, e in enumerate(evaluation.evalImgs[k * per_category:(k + 1) * per_category])
                     if e is not None]
            scores = np.concatenate([e["dtScores"] for _, e in found] + [np.zeros(0)])
            order = np.argsort(-scores, kind="mergesort")  # as accumulate sorts
            image = np.concatenate([np.full(len(e["dtScores"]), i) for i, e in found] + [np.zeros(0, int)])
            matched = np.concatenate([e["dtMatches"] for _, e in found] + [np.zeros((n_thresholds, 0))], axis=1)
            ignored = np.concatenate([e["dtIgnore"] for _, e in found] + [np.zeros((n_thresholds, 0))], axis=1)
            truths = np.zeros(self.n_images)  # boxes to find (not ignored) per image
            for i, e in found:
                truths[i] = np.count_nonzero(e["gtIgnore"] == 0)
            true = np.logical_and(matched, np.logical_not(ignored))[:, order]
            false = np.logical_and(np.logical_not(matched), np.logical_not(ignored))[:, order]
            self.categories.append((image[order], true, false, truths))

    def scores(self, indices=None) -> dict[str, float]:
        """``map`` and ``map50`` of the images ``indices`` (0-based, repeats counted); default: each once."""
        import numpy as np

        if self.constant is not None:
            return dict(self.constant)
        weight = np.bincount(np.arange(self.n_images) if indices is None else np.asarray(indices),
                             minlength=self.n_images).astype(float)
        precisions = [p for p in (self._precision(category, weight) for category in self.categories) if p is not None]
        if not precisions:
            return {"map": float("nan"), "map50": float("nan")}
        stacked = np.stack(precisions)  # [categories, iou thresholds, recall thresholds]
        return {"map": float(stacked.mean()), "map50": float(stacked[:, 0].mean())}

    def _precision(self, category: tuple, weight):
        """Interpolated precision ``[iou thresholds, recall thresholds]`` of one category; None without truth."""
        import numpy as np

        image, true, false, truths = category
        n_truths = float(truths @ weight)
        if n_truths == 0:
            return None
        w = weight[image]
        keep = w > 0
        true_sum = np.cumsum(true[:, keep] * w[keep], axis=1)
        false_sum = np.cumsum(false[:, keep] * w[keep], axis=1)
        precision = np.zeros((true.shape[0], len(self.recall_thresholds)))
        if true_sum.shape[1] == 0:
            return precision
        recall = true_sum / n_truths
        envelope = np.maximum.accumulate((true_sum / (true_sum + false_sum + np.spacing(1)))[:, ::-1], axis=1)[:, ::-1]
        for t in range(true.shape[0]):
            at = np.searchsorted(recall[t], self.recall_thresholds, side="left")
            reached = at < recall.shape[1]
            precision[t, reached] = envelope[t, at[reached]]
        return precision


def segmentation_scores(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int,
                        ignore_index: int = 255) -> dict[str, float]:
    """``miou`` (mean over the classes present in the targets or the predictions) and ``pixel_accuracy`` of
    class-index masks ``[..., H, W]``; target pixels equal to ``ignore_index`` are left out."""
    return confusion_scores(segmentation_confusion(predictions, targets, num_classes, ignore_index))


def segmentation_confusion(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int,
                           ignore_index: int = 255) -> torch.Tensor:
    """``[true, predicted]`` pixel counts of class-index masks, target pixels equal to ``ignore_index`` left out
    (per image, they add up to the set's: what a bootstrap over images resamples)."""
    keep = targets != ignore_index
    return confusion_matrix(predictions[keep].long(), targets[keep].long(), num_classes)


def confusion_scores(matrix: torch.Tensor) -> dict[str, float]:
    """``miou`` (over the classes present in the targets or the predictions) and ``pixel_accuracy`` of a
    ``[true, predicted]`` pixel count matrix."""
    matrix = torch.as_tensor(matrix).double()
    true_positive = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    present = union > 0
    iou = true_positive[present] / union[present]
    total = matrix.sum()
    return {"miou": iou.mean().item() if present.any() else float("nan"),
            "pixel_accuracy": (true_positive.sum() / total).item() if total else float("nan")}
