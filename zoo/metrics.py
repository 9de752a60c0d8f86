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
