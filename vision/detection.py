"""The ``object-detection`` task: images in, boxes with scores and category names out.

The contract every detection network of the zoo follows (torchvision's detection API):
in eval mode its forward takes a list of ``[3, H, W]`` float tensors in [0, 1], one
per image at its own size, and returns one dict per image: ``"boxes"`` ``[N, 4]``
(x1, y1, x2, y2 in the input's pixels), ``"scores"`` ``[N]``, ``"labels"`` ``[N]``
int64 indices into the card's ``labels``, optionally ``"keypoints"`` ``[N, K, 2 or 3]``
(landmarks) and ``"masks"`` ``[N, 1, H, W]``. Resizing and normalisation happen
inside the network, so the card's preprocessing only says how pictures become [0, 1].

``predict`` gives, per image, ``{"boxes": [[x1, y1, x2, y2], ...], "scores": [...],
"labels": [names]}`` (+ ``"landmarks"`` ``[[[x, y], ...], ...]`` when the network
gives keypoints). ``zoo predict --out`` writes them as a COCO JSON file (images,
categories and annotations with their ``score``: pycocotools' ``COCO`` reads it, and so does
:func:`vision.detection_data.load_detection` as ``annotations.json`` beside the pictures: pseudo-labels),
and ``--draw`` each picture with its boxes. ``zoo export`` writes FCOS, RetinaNet and SSD detectors as ONNX
bundles that ``zoo.runtime`` runs without torch (:mod:`vision.detection_export`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from vision.tasks import PictureTask, save_png
from zoo.atomic import write_text_atomic
from zoo.errors import BackendError, InputError

COCO_RESULTS = "detections.json"  # the file --out FOLDER writes
BACKGROUND = "__background__"  # torchvision's class 0, never a category of a box
NO_OBJECT = (BACKGROUND, "background", "N/A")  # names of a label list's slot 0 when it is no category
DRAW_MIN_SCORE = 0.5  # --draw shows the confident boxes; the COCO file keeps all above the model's threshold


class ObjectDetection(PictureTask):
    """Pictures in (any size); ``{"boxes", "scores", "labels"[, "landmarks"]}`` per picture out."""

    output_suffixes = (".json",)
    draw_suffix = "_boxes.png"

    @property
    def transform(self):
        """One raw picture → ``[3, H, W]`` in [0, 1] at its own size."""
        return self.unit

    def batch(self, raw_inputs: Sequence[Any]) -> list[torch.Tensor]:
        return [self.transform(x) for x in raw_inputs]

    # -- export (zoo export: vision.detection_export, vision.transforms.DetectorBatcher, zoo.boxes) ----------
    export_traced = True  # dynamic height and width: minutes through torch.export, seconds through the tracer

    @property
    def export_axes(self) -> tuple[int, ...]:
        fixed = (self.card.preprocessing or {}).get("in_network", {}).get("fixed_size")
        return (0,) if fixed else (0, 2, 3)

    def export_module(self, net: torch.nn.Module) -> torch.nn.Module:
        """The network up to its raw head outputs (:class:`vision.detection_export.DetectorHeads`); MTCNN and
        the two-stage R-CNNs refuse, saying why."""
        from vision.detection_export import DetectorHeads

        if self.card.architecture == "mtcnn":
            raise BackendError(f"{self.card.id}: MTCNN does not export to ONNX: its cascade (three networks over "
                               "an image pyramid, with NMS between the stages) is out of the bundle's scope; "
                               "run it with zoo.load")
        try:
            heads = DetectorHeads(net)
        except BackendError as e:
            raise BackendError(f"{self.card.id}: {e}") from None
        self._exported = net  # the hooks below describe this network's resizing, anchors and thresholds
        return heads

    def _exported_net(self) -> torch.nn.Module:
        net = getattr(self, "_exported", None)
        if net is None:
            raise BackendError(f"{self.card.id}: a detector converts through zoo export (export_module first)")
        return net

    def example_inputs(self) -> list[torch.Tensor]:
        from vision.detection_export import example_inputs

        return example_inputs(self._exported_net())

    def runtime_preprocessing(self) -> dict[str, Any]:
        from vision.detection_export import runtime_preprocessing

        return runtime_preprocessing(self._exported_net(), self.max_pixels)

    def runtime_postprocessing(self) -> dict[str, Any]:
        from vision.detection_export import runtime_postprocessing

        return runtime_postprocessing(self._exported_net())

    def bundle_checks(self, model, bundle) -> dict[str, Any]:
        from vision.detection_export import bundle_checks

        return bundle_checks(model, bundle)

    def predict(self, module, raw_inputs: Sequence[Any], *, device: torch.device, **options: Any) -> list[dict]:
        if options:
            raise InputError(f"task {self.card.task!r} takes no predict options, got {sorted(options)}")
        outputs = module([image.to(device) for image in self.batch(raw_inputs)])
        return self.postprocess(outputs)

    def postprocess(self, outputs: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
        return [self._prediction(output) for output in outputs]

    def _prediction(self, output: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        names = self.card.labels or []
        indices = output["labels"].tolist()
        unknown = sorted({i for i in indices if not 0 <= i < len(names)})
        if unknown:
            raise InputError(f"{self.card.id}: the network gave label indices {unknown[:5]} beyond the card's "
                             f"{len(names)} labels")
        prediction: dict[str, Any] = {
            "boxes": output["boxes"].float().cpu().tolist(),
            "scores": output["scores"].float().cpu().tolist(),
            "labels": [str(names[i]) for i in indices],
        }
        if "keypoints" in output:  # torchvision's keypoints carry a visibility third column
            prediction["landmarks"] = output["keypoints"][..., :2].float().cpu().tolist()
        return prediction

    def describe(self, prediction: Any, top_k: int = 1) -> str:
        """``N boxes: label score [x1, y1, x2, y2], ...``, the ``max(top_k, 3)`` best first."""
        order = np.argsort(prediction["scores"])[::-1][:max(top_k, 3)]
        shown = [f"{prediction['labels'][i]} {prediction['scores'][i]:.3f} "
                 f"[{', '.join(f'{v:.0f}' for v in prediction['boxes'][i])}]" for i in order]
        more = ", ..." if len(prediction["boxes"]) > len(order) else ""
        return f"{len(prediction['boxes'])} boxes" + (": " + ", ".join(shown) + more if shown else "")

    # -- files --------------------------------------------------------------
    def write(self, prediction: Any, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
        """One picture's boxes as a COCO JSON file."""
        return self._write_coco([prediction], [source], Path(path))

    def write_folder(self, predictions: Sequence[Any], folder: str | os.PathLike, *,
                     sources: Sequence[str | os.PathLike]) -> list[Path]:
        """Every picture's boxes in one COCO JSON file, ``FOLDER/detections.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return [self._write_coco(predictions, sources, folder / COCO_RESULTS)]

    def _write_coco(self, predictions: Sequence[Mapping], sources: Sequence, path: Path) -> Path:
        write_text_atomic(path, json.dumps(coco_document(predictions, sources, self.card.labels or []), indent=1))
        return path

    def draw(self, raw_input: Any, prediction: Any, path: str | os.PathLike) -> Path:
        """The picture with its boxes scoring at least ``DRAW_MIN_SCORE``, their labels and scores (and landmarks,
        where there are) drawn, as a PNG."""
        from torchvision.utils import draw_bounding_boxes, draw_keypoints

        pixels = self.pixels(raw_input)
        width = max(1, min(pixels.shape[1:]) // 200)
        shown = [i for i, score in enumerate(prediction["scores"]) if score >= DRAW_MIN_SCORE]
        boxes = torch.tensor([prediction["boxes"][i] for i in shown], dtype=torch.float32).reshape(-1, 4)
        captions = [f"{prediction['labels'][i]} {prediction['scores'][i]:.2f}" for i in shown]
        drawn = draw_bounding_boxes(pixels, boxes, captions, colors="red", width=width)
        if len(prediction.get("landmarks", ())) and shown:
            points = torch.tensor([prediction["landmarks"][i] for i in shown], dtype=torch.float32)
            drawn = draw_keypoints(drawn, points, colors="yellow", radius=2 * width)
        return save_png(drawn.permute(1, 2, 0).numpy(), path)


def coco_category_ids(labels: Sequence[str]) -> dict[int, int]:
    """COCO category id of each label index that names a category. COCO ids start at 1: where index 0 is a
    detector's no-object slot (torchvision's ``__background__``, a composite set's ``background``, DETR's
    ``N/A``) the index is the id (so torchvision's and DETR's COCO detectors write COCO's own ids) and slot 0
    is no category; otherwise (MTCNN's ``["face"]``, RT-DETR's 80 names) the id is the index + 1."""
    if labels and str(labels[0]) in NO_OBJECT:
        return {index: index for index in range(1, len(labels))}
    return {index: index + 1 for index in range(len(labels))}


def coco_categories(labels: Sequence[str]) -> list[dict[str, Any]]:
    """COCO ``categories`` for a detector's labels (:func:`coco_category_ids`; the slots COCO leaves unused in
    torchvision's list stay, named "N/A")."""
    return [{"id": category, "name": str(labels[index])} for index, category in coco_category_ids(labels).items()]


def coco_document(predictions: Sequence[Mapping], sources: Sequence, labels: Sequence[str]) -> dict[str, Any]:
    """Predictions as a COCO JSON document: ``images`` (from ``sources``), ``categories`` and ``annotations``
    with ``bbox`` ``[x, y, width, height]`` and the ``score``. A box of the no-object slot (DETR's class 0,
    ``N/A``, has logits too) has no category: it is left out and counted in ``info``."""
    ids: dict[str, int] = {}
    for index, category in coco_category_ids(labels).items():  # a repeated name ("N/A") takes its first id
        ids.setdefault(str(labels[index]), category)
    images, annotations, uncategorised = [], [], 0
    for image_id, (prediction, source) in enumerate(zip(predictions, sources), start=1):
        images.append({"id": image_id, "file_name": Path(source).name if source is not None else f"{image_id}"})
        for box, score, label in zip(prediction["boxes"], prediction["scores"], prediction["labels"]):
            if label not in ids:
                uncategorised += 1
                continue
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": ids[label],
                                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0, "score": round(float(score), 5)})
    document = {"images": images, "categories": coco_categories(labels), "annotations": annotations}
    if uncategorised:
        document["info"] = {"description": f"{uncategorised} boxes of the no-object class {labels[0]!r} left out"}
    return document

