"""torchvision's detectors and segmenters behind ``torchvision:MODEL[.WEIGHTS]``.

:func:`vision.upstream.load_torchvision` routes a model of ``torchvision.models.detection``
(``fasterrcnn_mobilenet_v3_large_fpn``, ``retinanet_resnet50_fpn_v2``, ``ssdlite320_mobilenet_v3_large``,
``maskrcnn_resnet50_fpn_v2``...) or ``torchvision.models.segmentation`` (``deeplabv3_resnet50``,
``lraspp_mobilenet_v3_large``, ``fcn_resnet50``...) here. Its card carries the weights' category
names (``weights.meta["categories"]``, COCO's 91 slots for detectors, Pascal VOC's 21 classes
for segmenters), their preprocessing and published metrics; the task adapters are
:class:`vision.detection.ObjectDetection` and :class:`vision.segmentation.SemanticSegmentation`.

The weights come as for classifiers: through the zoo store, pinned by the sha256 prefix in the
file name, read once from pickle with ``weights_only=True`` and converted to safetensors. The
network has the layout torchvision's own builder gives those weights (frozen batch norm in the
backbone, auxiliary heads, the class count: :func:`build_for_weights`), built without them;
``pretrained=False`` is torchvision's random init with no backbone weights either
(``weights_backbone=None``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import InputError
from zoo.hub import assemble

DETECTION = "object-detection"
SEGMENTATION = "semantic-segmentation"
# weights.meta["_metrics"] keys → card metric names (percentages there, fractions here).
_METRICS = {"box_map": "box_map", "mask_map": "mask_map", "kp_map": "keypoint_map", "miou": "miou",
            "pixel_acc": "pixel_accuracy"}


def dense_task(tvm, model: str) -> str | None:
    """The zoo task of a torchvision model: detection, segmentation, or None (not one of these)."""
    if model in tvm.list_models(module=tvm.detection):
        return DETECTION
    if model in tvm.list_models(module=tvm.segmentation):
        return SEGMENTATION
    return None


# torchvision's builders shape a detector by its weights, and offer no way to get that shape without loading
# them: these are their rules (checked against torchvision's own builds in tests/vision/test_detection_upstream.py).
# Pretrained, these detectors' backbones use frozen batch norm ...
FROZEN_NORM_BUILDERS = frozenset({"fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                                  "fasterrcnn_mobilenet_v3_large_320_fpn", "fcos_resnet50_fpn",
                                  "keypointrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn"})
# ... whose eps these legacy weights set to 0 (torchvision's overwrite_eps).
ZERO_EPS_WEIGHTS = frozenset({("fasterrcnn_resnet50_fpn", "COCO_V1"), ("retinanet_resnet50_fpn", "COCO_V1"),
                              ("maskrcnn_resnet50_fpn", "COCO_V1"), ("keypointrcnn_resnet50_fpn", "COCO_V1")})


def build_for_weights(model_name: str, weights: str, **kwargs: Any):
    """The network torchvision's builder makes for the weights enum member ``weights`` (``"COCO_V1"``), left
    unloaded: the zoo loads the verified state itself.

    Built with ``weights=None`` and what the weights decide: their class count (and keypoint count), no
    backbone weights, the auxiliary head segmenters are trained with, frozen batch norm (with its eps) in
    the backbones of the detectors listed above, and a detector's first backbone stages frozen.
    """
    import inspect

    import torchvision.models as tvm

    member = tvm.get_model_weights(model_name)[weights]
    options: dict[str, Any] = {"weights_backbone": None, "num_classes": len(member.meta["categories"])}
    if "keypoint_names" in member.meta:
        options["num_keypoints"] = len(member.meta["keypoint_names"])
    if "aux_loss" in inspect.signature(tvm.get_model_builder(model_name)).parameters:
        options["aux_loss"] = True  # segmenters' weights hold the auxiliary head they were trained with
    net = tvm.get_model(model_name, weights=None, **{**options, **kwargs})
    if model_name in FROZEN_NORM_BUILDERS:
        eps = 0.0 if (model_name, weights) in ZERO_EPS_WEIGHTS else None
        _freeze_norms(net.backbone.body, eps)
    if model_name in tvm.list_models(module=tvm.detection):
        for module in _first_stages(net, model_name):
            module.requires_grad_(False)
    return net


def _first_stages(net, model_name: str) -> list:
    """The backbone stages a pretrained torchvision detector does not train (its builder's default
    ``trainable_backbone_layers``: the last 3 stages of a ResNet or MobileNet FPN, 4 of VGG's, all of SSDlite's)."""
    from torch import nn

    if model_name.startswith("ssdlite"):
        return []
    if model_name.startswith("ssd300"):
        features = list(net.backbone.features)
        return features[:next(i for i, block in enumerate(features) if isinstance(block, nn.MaxPool2d))]
    if "mobilenet" in model_name:
        blocks = list(net.backbone.body.children())
        stages = [0] + [i for i, block in enumerate(blocks) if getattr(block, "_is_cn", False)] + [len(blocks) - 1]
        return blocks[:stages[len(stages) - 3]]
    return [module for name, module in net.backbone.body.named_children() if name not in ("layer2", "layer3", "layer4")]


def _freeze_norms(module, eps: float | None) -> None:
    """Every batch norm under ``module`` as torchvision's ``FrozenBatchNorm2d`` (statistics and affine fixed)."""
    from torch import nn
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features, eps=child.eps if eps is None else eps))
        else:
            _freeze_norms(child, eps)


def load_dense(model: str, weights, zoo_id: str, task: str, *, pretrained: bool, num_classes: int | None):
    """A :class:`zoo.Model` for a torchvision detector or segmenter (``weights``: a member of its enum)."""
    import torchvision.models as tvm

    from vision.upstream import _load_strict, _read_state, _torch_hub_weights
    from zoo.hub import skip_init

    categories = list(weights.meta["categories"])
    files: dict[str, dict[str, Any]] = {}
    if pretrained:
        if num_classes is not None and int(num_classes) != len(categories):
            raise InputError(f"{zoo_id}: its pretrained heads have {len(categories)} classes; a new head of "
                             f"{num_classes} is not built for {task} models yet (load it with pretrained=False)")
        arch_args = {"model_name": model, "num_classes": len(categories), "weights": weights.name}
        path, files = _torch_hub_weights(weights.url, zoo_id)
        state = _read_state(path, zoo_id)
        with skip_init():  # every tensor is overwritten by the strict load below
            net = build_for_weights(**arch_args)
        _load_strict(net, state, zoo_id, path)
    else:
        n = len(categories) if num_classes is None else int(num_classes)
        arch_args = {"model_name": model, "num_classes": n, "weights_backbone": None}
        net = tvm.get_model(model, weights=None, **{k: v for k, v in arch_args.items() if k != "model_name"})
    card = _dense_card(net, model, weights, zoo_id, task, arch_args, pretrained=pretrained, files=files)
    return assemble(net, card, {name: Path(meta["path"]) for name, meta in files.items()})


def _dense_card(net, model: str, weights, zoo_id: str, task: str, arch_args: dict, *, pretrained: bool, files: dict):
    import torchvision

    from zoo.card import ModelCard

    meta = weights.meta
    n = int(arch_args["num_classes"])
    categories = list(meta["categories"])
    metrics = [{"name": _METRICS[key], "value": value / 100, "dataset": dataset.lower(), "split": "val",
                "source": "torchvision weights meta"}
               for dataset, values in (meta.get("_metrics") or {}).items() if pretrained
               for key, value in values.items() if key in _METRICS]
    if task == DETECTION:
        preprocessing, input_spec = detector_preprocessing(net)
    else:
        preprocessing, input_spec = _segmentation_preprocessing(weights.transforms())
    return ModelCard(
        id=zoo_id,
        domain="vision",
        task=task,
        architecture="torchvision",
        arch_args=arch_args,
        labels=categories if n == len(categories) else [f"class_{i}" for i in range(n)],
        input=input_spec,
        preprocessing=preprocessing,
        metrics=metrics,
        params=sum(p.numel() for p in net.parameters()),
        license="BSD-3-Clause",
        source=weights.url,
        description=f"torchvision {model} with weights {type(weights).__name__}.{weights.name}",
        files=files,
        provenance={"upstream": {"library": "torchvision", "version": torchvision.__version__,
                                 "name": f"{model}.{weights.name.lower()}", "pretrained": pretrained,
                                 "recipe": meta.get("recipe")}},
    )


def detector_preprocessing(net) -> tuple[dict, dict]:
    """A detector takes [0, 1] pictures of any size; it resizes and normalises them itself, as recorded here."""
    inner = net.transform  # torchvision's GeneralizedRCNNTransform
    side = int(inner.fixed_size[0]) if inner.fixed_size else int(inner.min_size[0])
    preprocessing = {
        "channels": 3,
        "array_range": [0, 255],
        "pil": "convert to RGB (alpha composited over white), scale 0-255 to 0-1, keep the size",
        "in_network": {"min_size": [int(s) for s in inner.min_size], "max_size": int(inner.max_size),
                       "fixed_size": list(inner.fixed_size) if inner.fixed_size else None,
                       "mean": [float(v) for v in inner.image_mean], "std": [float(v) for v in inner.image_std]},
    }
    return preprocessing, {"shape": [3, side, side], "dtype": "float32", "any_size": True}


def _segmentation_preprocessing(transform) -> tuple[dict, dict]:
    """torchvision's ``SemanticSegmentation`` preset: shorter side to ``resize_size``, normalised."""
    size = int(transform.resize_size[0]) if transform.resize_size else None
    preprocessing = {"channels": 3, "array_range": [0, 255], "resize_size": size,
                     "mean": [float(v) for v in transform.mean], "std": [float(v) for v in transform.std],
                     "interpolation": transform.interpolation.value}
    return preprocessing, {"shape": [3, size or 520, size or 520], "dtype": "float32", "any_size": True}
