"""``zoo export`` of single-stage detectors: the network up to its raw head outputs, the rest in numpy.

The exported graph takes the picture as torchvision's ``GeneralizedRCNNTransform`` hands it to the backbone
(resized, normalised, padded: :class:`vision.transforms.DetectorBatcher` prepares it the same way without
torch) and gives, per anchor, the class logits, the box regression, the centerness logit (FCOS), the anchor box
and its feature level (:class:`DetectorHeads`). :func:`zoo.boxes.detect` decodes them in ``zoo.runtime`` as the
network's own ``postprocess_detections`` does. FCOS, RetinaNet and SSD (SSDLite) export; the two-stage R-CNNs
(their RoI stage runs a second network on boxes the first one chose) and MTCNN (a cascade over an image
pyramid) do not.
"""
from __future__ import annotations

from typing import Any

import torch

from zoo.errors import BackendError

PARITY_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # real photos the exported boxes are checked on
MAX_BOX_DIFF = 1.0  # pixels: how far an exported box may be from eager's


def decoder_of(net: torch.nn.Module) -> str:
    """The :mod:`zoo.boxes` decoder of a torchvision single-stage detector; a BackendError for others."""
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    for kind, name in ((FCOS, "fcos"), (RetinaNet, "retinanet"), (SSD, "ssd")):
        if isinstance(net, kind):
            return name
    if isinstance(net, GeneralizedRCNN):
        raise BackendError(f"{type(net).__name__} does not export to ONNX: a two-stage detector's RoI stage (a "
                           "second network on the boxes its region proposals chose, then per-class decoding) is "
                           "out of the bundle's numpy decoding, which covers FCOS, RetinaNet and SSD; run it with "
                           "zoo.load")
    raise BackendError(f"{type(net).__name__} does not export to ONNX: zoo export takes torchvision's FCOS, "
                       "RetinaNet and SSD detectors; run it with zoo.load")


class DetectorHeads(torch.nn.Module):
    """A single-stage detector from its prepared picture batch ``[B, 3, H, W]`` to one tensor ``[B, anchors,
    classes + 4 (+ 1: FCOS's centerness) + 4 (anchor) + 1 (level)]``: what ``zoo export`` writes."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        self.decoder = decoder_of(net)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from torchvision.models.detection.image_list import ImageList

        features = self.net.backbone(images)
        features = list(features.values()) if isinstance(features, dict) else [features]
        head = self.net.head(features)
        # Every picture of the batch has the same anchors: those of the first, repeated (the batch stays dynamic).
        first = ImageList(images[:1], [(images.shape[-2], images.shape[-1])])
        anchors = self.net.anchor_generator(first, features)[0][None].expand(images.shape[0], -1, -1)
        locations = [f.shape[-2] * f.shape[-1] for f in features]
        per_location = head["cls_logits"].shape[1] // sum(locations)  # anchors a location (RetinaNet: 9)
        levels = torch.cat([torch.full((n * per_location,), float(i)) for i, n in enumerate(locations)])
        columns = [head["cls_logits"], head["bbox_regression"]]
        if self.decoder == "fcos":
            columns.append(head["bbox_ctrness"])
        columns += [anchors.to(images.dtype), levels[None, :, None].expand(images.shape[0], -1, 1)]
        return torch.cat(columns, dim=-1)


def runtime_preprocessing(net: torch.nn.Module, max_pixels: int | None) -> dict[str, Any]:
    """The :class:`vision.transforms.DetectorBatcher` spec of the network's ``GeneralizedRCNNTransform``."""
    inner = net.transform
    spec = {"min_size": int(inner.min_size[-1]), "max_size": int(inner.max_size),
            "fixed_size": [int(s) for s in inner.fixed_size] if inner.fixed_size else None,
            "size_divisible": int(inner.size_divisible), "mean": [float(v) for v in inner.image_mean],
            "std": [float(v) for v in inner.image_std], "max_pixels": max_pixels}
    return {"ref": "vision.transforms:DetectorBatcher", "spec": spec}


def runtime_postprocessing(net: torch.nn.Module) -> dict[str, Any]:
    """The :func:`zoo.boxes.detect` spec: the decoder and the network's own thresholds."""
    decoder = decoder_of(net)
    spec = {"kind": "detection", "decoder": decoder, "score_thresh": float(net.score_thresh),
            "nms_thresh": float(net.nms_thresh), "topk_candidates": int(net.topk_candidates),
            "detections_per_img": int(net.detections_per_img)}
    if decoder != "fcos":
        spec["box_weights"] = [float(w) for w in net.box_coder.weights]
    return spec


def example_inputs(net: torch.nn.Module) -> list[torch.Tensor]:
    """Two prepared batches; of different heights and widths unless every picture becomes one size."""
    inner = net.transform
    generator = torch.Generator().manual_seed(0)
    if inner.fixed_size:
        width, height = inner.fixed_size  # GeneralizedRCNNTransform's fixed_size is (width, height)
        return [torch.rand((2, 3, height, width), generator=generator),
                torch.rand((1, 3, height, width), generator=generator)]
    side = int(inner.min_size[-1])
    step = int(inner.size_divisible)
    short = max(step, (side * 3 // 4) // step * step)
    return [torch.rand((1, 3, side, short), generator=generator), torch.rand((2, 3, short, side), generator=generator)]


def bundle_checks(model, bundle) -> dict[str, Any]:
    """The bundle's detections against eager's on real photos (scikit-image's samples): the same number of boxes,
    each within :data:`MAX_BOX_DIFF` pixels of an eager box of the same label."""
    from skimage import data

    rows = []
    for name in PARITY_PHOTOS:
        photo = getattr(data, name)()
        eager, exported = model.predict(photo), bundle.predict(photo)
        rows.append({"photo": f"skimage.data.{name}", "size": list(photo.shape[:2]),
                     "eager_boxes": len(eager["boxes"]), "exported_boxes": len(exported["boxes"]),
                     "max_box_diff": box_distance(eager, exported)})
    same_count = all(row["max_box_diff"] is not None for row in rows)
    worst = max(row["max_box_diff"] for row in rows) if same_count else None
    return {"measure": "max_box_diff_px", "max": worst, "required": MAX_BOX_DIFF,
            "boxes": sum(row["eager_boxes"] for row in rows),
            "passed": same_count and worst <= MAX_BOX_DIFF, "photos": rows}


def box_distance(eager: dict, exported: dict) -> float | None:
    """The largest distance (pixels, any coordinate) from an eager box to the nearest exported box of its label;
    None when the counts differ."""
    import numpy as np

    if len(eager["boxes"]) != len(exported["boxes"]):
        return None
    theirs = np.asarray(exported["boxes"], dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(exported["labels"], dtype=object)
    worst = 0.0
    for box, label in zip(eager["boxes"], eager["labels"]):
        same = theirs[labels == label]
        if not len(same):
            return None
        worst = max(worst, float(np.abs(same - np.asarray(box)).max(axis=1).min()))
    return worst
