"""Where a segmenter's mIoU goes on the fashion composite: item outlines or Fashion-MNIST classes.

On the test split, with each item's exact mask from ``annotations.json``:

- ``foreground_iou``: item-vs-background IoU, classes ignored (how well outlines are found);
- ``item_accuracy``: the share of items whose most-predicted class (over their own pixels) is theirs;
- ``miou_with_true_classes``: the predicted foreground, each pixel inside an item given that item's class
  (all class confusions removed; what the outlines alone allow);
- ``miou_with_true_outlines``: the true masks, each item painted with its most-predicted class (all outline
  errors removed; what the classification alone allows);
- ``per_class_iou`` and each class's most frequent confusion.

    python -m benchmarks.segmentation_error_split [--model vision/lraspp_efficientnet_lite0.fashion_composite]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "vision/lraspp_efficientnet_lite0.fashion_composite"
RESULT = Path(__file__).parent / "results" / "segmentation_error_split.json"


def test_items(folder: Path) -> tuple[list[Path], list[np.ndarray], list[list[tuple[int, np.ndarray]]]]:
    """The test pictures, their class masks and their items as ``(class index, bool mask)``."""
    from PIL import Image
    from pycocotools import mask as rle

    document = json.loads((folder / "annotations.json").read_text())
    items: dict[int, list] = {image["id"]: [] for image in document["images"]}
    for annotation in document["annotations"]:
        shape = annotation["segmentation"]  # uncompressed RLE, as vision.composite writes it
        where = rle.decode(rle.frPyObjects(shape, *shape["size"])) > 0
        items[annotation["image_id"]].append((annotation["category_id"], where))
    pictures = [folder / "images" / image["file_name"] for image in document["images"]]
    masks = [np.asarray(Image.open(folder / "masks" / Path(image["file_name"]).with_suffix(".png").name))
             for image in document["images"]]
    return pictures, masks, [items[image["id"]] for image in document["images"]]


def error_split(predicted: list[np.ndarray], truth: list[np.ndarray], items: list[list], classes: list[str]) -> dict:
    """The figures of the module docstring for class masks ``predicted`` against ``truth``."""
    import torch

    from zoo.metrics import confusion_scores, segmentation_confusion

    def scores(masks: list[np.ndarray]) -> dict:
        matrix = sum(segmentation_confusion(torch.as_tensor(np.array(m)), torch.as_tensor(np.array(t)), len(classes))
                     for m, t in zip(masks, truth))
        return matrix, confusion_scores(matrix)

    true_classes, true_outlines, right, total = [], [], 0, 0
    for mask, labels, objects in zip(predicted, truth, items):
        true_classes.append(np.where((mask > 0) & (labels > 0), labels, mask))
        painted = np.zeros_like(labels)
        for label, where in objects:
            votes = np.bincount(mask[where].astype(np.int64), minlength=len(classes))
            votes[0] = 0  # the item's class among the classes predicted on it, background aside
            guess = int(votes.argmax()) if votes.any() else 0
            painted[where] = guess
            right, total = right + (guess == label), total + 1
        true_outlines.append(painted)
    matrix, plain = scores(predicted)
    matrix = matrix.double()
    iou = matrix.diag() / (matrix.sum(0) + matrix.sum(1) - matrix.diag())
    rows = matrix / matrix.sum(1, keepdim=True)
    foreground = [m > 0 for m in predicted], [t > 0 for t in truth]
    intersection = sum((p & t).sum() for p, t in zip(*foreground))
    union = sum((p | t).sum() for p, t in zip(*foreground))
    return {
        "miou": round(plain["miou"], 4),
        "pixel_accuracy": round(plain["pixel_accuracy"], 4),
        "foreground_iou": round(float(intersection / union), 4),
        "items": total,
        "item_accuracy": round(right / total, 4),
        "miou_with_true_classes": round(scores(true_classes)[1]["miou"], 4),
        "miou_with_true_outlines": round(scores(true_outlines)[1]["miou"], 4),
        "per_class_iou": {name: round(iou[c].item(), 4) for c, name in enumerate(classes)},
        "most_confused_with": {name: _confusion(rows[c], c, classes) for c, name in enumerate(classes)},
    }


def _confusion(row, own: int, classes: list[str]) -> str:
    other = max((k for k in range(len(classes)) if k != own), key=lambda k: row[k].item())
    return f"{classes[other]} ({row[other].item():.1%} of its pixels)"


def main() -> None:
    from PIL import Image

    import zoo
    from vision.composite import fashion_composite

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    folders = fashion_composite()
    pictures, truth, items = test_items(folders.test)
    model = zoo.load(args.model).eval()
    classes = list(model.card.labels)
    if classes != folders.classes:
        raise SystemExit(f"{args.model} segments {classes}; expected the composite's classes {folders.classes}")
    predicted = []
    for start in range(0, len(pictures), 32):
        chunk = [Image.open(p).convert("RGB") for p in pictures[start:start + 32]]
        predicted += [np.asarray(found["mask"]) for found in model.predict(chunk)]
    result = {"benchmark": "segmentation_error_split", "model": args.model, "dataset": "vision/fashion_composite",
              "split": "test", "images": len(pictures), **error_split(predicted, truth, items, classes),
              "command": f"python -m benchmarks.segmentation_error_split --model {args.model}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
