"""``hf:ORG/REPO[@REVISION]`` detectors and segmenters: transformers checkpoints with their image processors.

``zoo.load("hf:facebook/detr-resnet-50")`` builds any checkpoint ``AutoModelForObjectDetection``
loads (DETR, Conditional/Deformable DETR, RT-DETR, YOLOS...) as an ``object-detection`` model and
any ``AutoModelForSemanticSegmentation`` loads (SegFormer, BEiT, DPT, MobileViT, UperNet...) as a
``semantic-segmentation`` one, with the checkpoint's image processor
(:mod:`vision.models.hf_dense`): boxes in the input's pixels through the processor's
``post_process_object_detection(threshold=..., target_sizes=...)``, masks at the input's size, label
names from the config's ``id2label``.

The task is the checkpoint's own: the class its ``config.json`` names (``architectures``, else its
``model_type``), never the id's text. ``hf:`` is shared with the text models of ``nlp``: this loader
claims (:func:`claims`) the checkpoints of image model classes and those loaded with
``task="object-detection"`` / ``"semantic-segmentation"``; image checkpoints of other tasks
(classifiers, panoptic segmenters, depth) are refused with the reason, not handed to a text loader.

Files come as for every ``hf:`` model (:mod:`zoo.hf`): the Hugging Face cache (only that cache when
``ZOO_OFFLINE`` / ``HF_HUB_OFFLINE`` is set), safetensors only, each weights file checked in place
against the sha256 the cache names its blob by; ``hf:PATH`` takes a local checkpoint folder. Load
options: ``task``, ``revision`` and, for detectors, ``threshold`` (the score a box needs, 0.5 by default).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import InputError

DETECTION = "object-detection"
SEGMENTATION = "semantic-segmentation"
# The zoo task of each transformers auto class, and the image tasks refused with their name.
TASK_MAPPINGS = {DETECTION: "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
                 SEGMENTATION: "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES"}
OTHER_IMAGE_MAPPINGS = {"image classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
                        "instance segmentation": "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES",
                        "universal (panoptic) segmentation": "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
                        "image segmentation": "MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES",
                        "zero-shot object detection": "MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES",
                        "depth estimation": "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES"}
_AUTO_CLASSES = {DETECTION: "AutoModelForObjectDetection", SEGMENTATION: "AutoModelForSemanticSegmentation"}
_ARCHITECTURES = {DETECTION: "hf_object_detector", SEGMENTATION: "hf_semantic_segmenter"}
_SUPPORTED = ("object-detection (AutoModelForObjectDetection: DETR, RT-DETR, YOLOS...) and semantic-segmentation "
              "(AutoModelForSemanticSegmentation: SegFormer...) checkpoints")


def checkpoint_kind(config: dict[str, Any]) -> tuple[str | None, str]:
    """``(kind, model class)`` of a ``config.json``: kind is a zoo task (:data:`TASK_MAPPINGS`), another image
    task's name (:data:`OTHER_IMAGE_MAPPINGS`), or None (not an image checkpoint). The class is the first of
    ``architectures``; a config without them is taken by its ``model_type`` when that names one task only."""
    from transformers.models.auto import modeling_auto

    mappings = {kind: getattr(modeling_auto, name, {}) for kind, name in {**TASK_MAPPINGS, **OTHER_IMAGE_MAPPINGS}.items()}
    architectures = config.get("architectures") or []
    for architecture in architectures if isinstance(architectures, list) else []:
        for kind, mapping in mappings.items():
            if architecture in mapping.values():
                return kind, str(architecture)
    model_type = config.get("model_type")
    if architectures or not isinstance(model_type, str):
        return None, str((architectures or [model_type])[0])
    kinds = [kind for kind in TASK_MAPPINGS if model_type in mappings[kind]]
    return (kinds[0], mappings[kinds[0]][model_type]) if len(kinds) == 1 else (None, model_type)


def claims(name: str, task: str | None = None, **options: Any) -> bool:
    """Whether ``hf:NAME`` is this loader's: ``task`` is a vision task, or its config names an image model class."""
    if task is not None:
        return task in TASK_MAPPINGS
    from zoo.hf import read_config

    config = read_config(name)
    return config is not None and checkpoint_kind(config)[0] is not None


def load_hf_dense(name: str, *, pretrained: bool = True, num_classes: int | None = None, task: str | None = None,
                  revision: str | None = None, threshold: float | None = None, **options: Any):
    """A :class:`zoo.Model` for a transformers detector or segmenter ``hf:ORG/REPO[@REVISION]`` or ``hf:LOCAL_DIR``."""
    import torch
    import transformers

    from vision.models.hf_dense import DEFAULT_THRESHOLD, HFObjectDetector, HFSemanticSegmenter
    from zoo import hf

    repo, pinned = hf.split_revision(name)
    if revision and pinned and revision != pinned:
        raise InputError(f"hf:{name} pins revision {pinned!r} but revision={revision!r} was also given")
    revision = revision or pinned
    zoo_id = f"hf:{repo}" + (f"@{revision}" if revision else "")
    if options:
        raise InputError(f"{zoo_id}: detectors and segmenters take the load options task, revision and threshold, "
                         f"got {sorted(options)}")
    folder, commit = hf.resolve(repo, revision)
    config, class_name = _config(folder, zoo_id)
    task = _task_of(config, class_name, zoo_id, task)
    is_number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if threshold is not None and (task != DETECTION or not is_number or not 0 <= threshold <= 1):
        raise InputError(f"{zoo_id}: threshold is a detector's score cut, between 0 and 1; got {threshold!r} "
                         f"for a {task} model")
    config = _with_classes(config, zoo_id, pretrained=pretrained, num_classes=num_classes)
    processor = _processor(folder, zoo_id)
    weights = hf.weight_entries(folder, repo, commit) if pretrained else {}  # checked before transformers reads them
    auto_class = getattr(transformers, _AUTO_CLASSES[task])
    model = (hf.from_pretrained(auto_class, folder, zoo_id, config=config, dtype=torch.float32) if pretrained
             else auto_class.from_config(config, dtype=torch.float32))
    arch_args: dict[str, Any] = {"config": hf.config_dict(model.config), "processor": _processor_dict(processor)}
    if task == DETECTION:
        arch_args["threshold"] = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        net = HFObjectDetector(model, processor, arch_args["threshold"])
    else:
        net = HFSemanticSegmenter(model, processor)
    card = _card(net, zoo_id, task, class_name, arch_args, source=hf.source_of(repo, commit),
                 license_=hf.license_of(folder), files=weights, pretrained=pretrained)
    from zoo.hub import assemble

    return assemble(net, card, {})


def _config(folder: Path, zoo_id: str):
    """transformers' config of the checkpoint (no remote code) and the model class it names."""
    from transformers import AutoConfig

    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError) as exc:  # no config, not JSON, unknown model_type, or remote code
        raise InputError(f"{zoo_id}: transformers cannot read its config {path} ({exc}); the zoo builds "
                         f"transformers' own {_SUPPORTED}") from None
    return config, (checkpoint_kind(raw) if isinstance(raw, dict) else (None, "unknown"))


def _task_of(config, found: tuple[str | None, str], zoo_id: str, task: str | None) -> str:
    """The checkpoint's task, from its model class; a task asked for that is not the checkpoint's is refused."""
    kind, class_name = found
    if task is not None and task not in TASK_MAPPINGS:
        raise InputError(f"{zoo_id}: hf: vision models take task in {tuple(TASK_MAPPINGS)}, got {task!r}")
    if kind is None and task is not None and not config.architectures and config.model_type in _mapping(task):
        kind = task  # a bare config (no architectures) of a model type the task's auto class takes
    if kind not in TASK_MAPPINGS or (task is not None and kind != task):
        what = f"a {class_name} checkpoint" + (f" ({kind})" if kind else "")
        wanted = f"not {task}: " if task else ""
        raise InputError(f"{zoo_id} is {what}, {wanted}the zoo's hf: vision loader takes {_SUPPORTED}")
    return kind


def _mapping(task: str) -> dict:
    from transformers.models.auto import modeling_auto

    return getattr(modeling_auto, TASK_MAPPINGS[task], {})


def _with_classes(config, zoo_id: str, *, pretrained: bool, num_classes: int | None):
    """The config with ``num_classes`` fresh classes (random init only: pretrained heads keep theirs)."""
    if num_classes is None or int(num_classes) == config.num_labels:
        return config
    if pretrained:
        raise InputError(f"{zoo_id}: its pretrained head has {config.num_labels} classes; a new head of "
                         f"{num_classes} is not built for hf: detectors and segmenters yet (load it with "
                         "pretrained=False)")
    if int(num_classes) < 1:
        raise InputError(f"{zoo_id}: num_classes must be at least 1, got {num_classes}")
    config.id2label = {i: f"class_{i}" for i in range(int(num_classes))}
    config.label2id = {label: i for i, label in config.id2label.items()}
    return config


def _processor(folder: Path, zoo_id: str):
    """The checkpoint's image processor (``preprocessor_config.json``), transformers' own classes only."""
    from transformers import AutoImageProcessor

    if not (folder / "preprocessor_config.json").is_file():
        raise InputError(f"{zoo_id}: no preprocessor_config.json beside its config: the zoo needs the "
                         "checkpoint's image processor to size pictures and scale its outputs back")
    try:
        return AutoImageProcessor.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{zoo_id}: could not build its image processor: {type(exc).__name__}: {exc}") from None


def _processor_dict(processor) -> dict[str, Any]:
    return json.loads(json.dumps(processor.to_dict()))  # tuples become lists, as in preprocessor_config.json


def _card(net, zoo_id: str, task: str, class_name: str, arch_args: dict, *, source: str, license_: str | None,
          files: dict, pretrained: bool):
    import transformers

    from zoo.card import ModelCard

    config = net.model.config
    processor = arch_args["processor"]
    side = _side(processor.get("size"))
    in_network = {key: processor[key] for key in ("image_processor_type", "size", "image_mean", "image_std",
                                                  "do_pad") if key in processor}
    preprocessing: dict[str, Any] = {
        "channels": 3, "array_range": [0, 255],
        "pil": "convert to RGB (alpha composited over white), scale 0-255 to 0-1, keep the size",
        "in_network": in_network,
    }
    if task == SEGMENTATION:  # the adapter passes [0, 1] pictures as they are: the processor prepares them
        preprocessing.update(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    return ModelCard(
        id=zoo_id,
        domain="vision",
        task=task,
        architecture=_ARCHITECTURES[task],
        arch_args=arch_args,
        labels=[str(config.id2label.get(i, f"class_{i}")) for i in range(config.num_labels)],
        input={"shape": [3, side, side], "dtype": "float32", "any_size": True},
        preprocessing=preprocessing,
        params=sum(p.numel() for p in net.parameters()),
        license=license_,
        source=source,
        description=f"{class_name} from {zoo_id} through transformers, with its {processor.get('image_processor_type')}",
        files=files,
        provenance={"upstream": {"library": "transformers", "version": transformers.__version__,
                                 "name": zoo_id, "class": class_name, "pretrained": pretrained}},
    )


def _side(size: Any) -> int:
    """A picture side the processor works at (its ``shortest_edge`` or height), for the card's input shape."""
    if isinstance(size, dict):
        for key in ("shortest_edge", "height", "max_height"):
            if isinstance(size.get(key), int):
                return size[key]
    return 512
