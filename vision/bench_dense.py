"""Detection and segmentation in the vision suite, and their control arms.

Picked as the classification tasks are: every pretrained vision detector and segmenter, on the test
split of each dataset its card records a test metric on. A detector reports COCO box mAP@[.5:.95]
(``map``) and mAP at IoU .5 (``map50``) by pycocotools; a segmenter mIoU and pixel accuracy; both
latency and throughput at batch 1. Their 95% CIs are percentile bootstraps over the test images:

* mAP is no mean of per-image values, so each resample is scored anew: COCOeval matches boxes
  once per image, and :class:`zoo.metrics.DetectionMatches` re-accumulates those matches over
  the resampled images (what COCOeval on the resampled images gives, vectorised);
* mIoU and pixel accuracy come from the sum of the resampled images' confusion matrices.

Control arms: MTCNN on ``skimage.data.lfw_subset()`` (100 faces, 100 non-faces; AUC of the
best face score), and the detection recipe trained from ImageNet weights and from random init
for the same wall time (:func:`transfer_arms`), scored on the same test images, the difference
with a paired bootstrap CI: transfer must show.
"""
from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bench import BenchTask, ExampleStatistic, TaskOutput, measure_latency, measure_throughput, step

DETECTION, SEGMENTATION = "object-detection", "semantic-segmentation"
MTCNN_ID = "vision/mtcnn.face"
# The bundled detector's name in vision.train_bundled.CONFIGS: the transfer control trains its config.
BUNDLED_DETECTOR = "fcos_efficientnet_lite0.fashion_composite"
PREDICT_CHUNK = 16  # pictures per predict call when scoring a test split
QUICK_COMPOSITE = {"train": 32, "val": 8, "test": 16}  # the transfer control's small set under --quick


def dense_tasks(quick: bool = False) -> list[BenchTask]:
    """The detection and segmentation cells of ``zoo bench vision``, then MTCNN on lfw_subset and the transfer
    control (when the Fashion-MNIST files are here to make its composite pictures)."""
    from vision.datasets import fashion_mnist_available
    from zoo.hub import list_models

    iters, n_boot = (30, 200) if quick else (200, 1000)
    tasks = [BenchTask(name=f"{model_id.split('/', 1)[1]}@{dataset.split('/')[-1]}", model=model_id,
                       dataset=dataset, per_backend=True, run=partial(run, model_id, dataset, iters, n_boot))
             for task, run in ((DETECTION, run_detector), (SEGMENTATION, run_segmenter))
             for model_id, dataset in scored_on_test(task)]
    if MTCNN_ID in list_models("vision/*", pretrained=True):
        tasks.append(BenchTask(name="mtcnn.face@lfw_subset", model=MTCNN_ID, dataset="skimage/lfw_subset",
                               run=partial(run_mtcnn_lfw, iters, n_boot)))
    if fashion_mnist_available():  # the composite pictures are made of its items
        small = "/".join(str(n) for n in QUICK_COMPOSITE.values())
        tasks.append(BenchTask(name="fcos-random-init-vs-in1k@fashion_composite", model="control/fcos-random-init",
                               dataset=f"fashion_composite {small} (quick)" if quick else "vision/fashion_composite",
                               control=True, run=partial(run_transfer, quick, n_boot)))
    return tasks


def scored_on_test(task: str) -> list[tuple[str, str]]:
    """``(model id, dataset)`` for every pretrained vision model of ``task`` and each dataset its card records a
    test metric on (cards only, no build)."""
    from zoo.hub import info, list_models

    cells = []
    for model_id in list_models("vision/*", task=task, pretrained=True):
        metrics = info(model_id).metrics
        cells += [(model_id, dataset) for dataset in dict.fromkeys(
            m["dataset"] for m in metrics if m.get("split") == "test" and m.get("dataset"))]
    return cells


# -- detection --------------------------------------------------------------------------------------------
def detections(model, test) -> tuple[list[dict], list[dict], list]:
    """``model``'s detections on a detection test split, its truths (label indices of the split's classes) and
    the raw pictures."""
    from vision.images import read_image
    from zoo.errors import InputError

    pictures = [read_image(record.image) for record in test.records]
    truths = [{"boxes": record.boxes, "labels": record.labels} for record in test.records]
    index = {name: i for i, name in enumerate(test.classes)}
    found = []
    for start in range(0, len(pictures), PREDICT_CHUNK):
        for prediction in model.predict(pictures[start:start + PREDICT_CHUNK]):
            unknown = sorted(set(prediction["labels"]) - set(index))
            if unknown:
                raise InputError(f"{model.card.id} predicts {unknown}, which the test data's classes "
                                 f"{test.classes} do not name; expected a detector of the data's classes")
            found.append({"boxes": np.asarray(prediction["boxes"], dtype=float).reshape(-1, 4),
                          "scores": np.asarray(prediction["scores"], dtype=float),
                          "labels": np.array([index[name] for name in prediction["labels"]], dtype=np.int64)})
    return found, truths, pictures


def run_detector(model_id: str, dataset: str, iters: int, n_boot: int, seed: int, backend: str) -> TaskOutput:
    """COCO mAP and mAP50 with bootstrap CIs over the test images, latency and throughput at batch 1."""
    import torch

    from vision.detection_data import load_detection
    from zoo.hub import load
    from zoo.metrics import DetectionMatches

    torch.manual_seed(seed)
    step(f"loading {model_id} [{backend}]")
    model = load(model_id, backend=backend).eval()
    test = _test_split(load_detection(dataset), dataset)
    step(f"detecting in {len(test)} test images")
    found, truths, pictures = detections(model, test)
    step("scoring (COCOeval)")
    matches = DetectionMatches(found, truths)
    return TaskOutput(
        metrics=matches.scores(),
        resampled=ExampleStatistic(matches.n_images, matches.scores, n_boot),
        **_timings(model, pictures, iters),
        extra={"test_images": len(test), "boxes_true": int(sum(len(t["labels"]) for t in truths)),
               "boxes_found": int(sum(len(f["labels"]) for f in found))},
    )


def _timings(model, pictures: list, iters: int) -> dict[str, Any]:
    """Latency and throughput of ``model.predict`` on one picture at a time."""
    return {"latency_ms": measure_latency(lambda: model.predict(pictures[0]), iters=iters),
            "throughput": measure_throughput(model.predict, pictures, batch_size=1),
            "throughput_unit": "images/s", "params": model.num_params}


def _test_split(splits, dataset: str):
    from zoo.errors import InputError

    if splits.test is None:
        raise InputError(f"{dataset} has no test split; the suite scores models on test images only")
    return splits.test


# -- segmentation -----------------------------------------------------------------------------------------
def run_segmenter(model_id: str, dataset: str, iters: int, n_boot: int, seed: int, backend: str) -> TaskOutput:
    """mIoU and pixel accuracy with bootstrap CIs (resampled per-image confusion matrices), latency and
    throughput at batch 1."""
    import torch

    from vision.dense_recipes import IGNORE_INDEX
    from vision.images import read_image
    from vision.segmentation_data import load_segmentation, read_mask
    from zoo.errors import InputError
    from zoo.hub import load
    from zoo.metrics import confusion_scores, segmentation_confusion

    torch.manual_seed(seed)
    step(f"loading {model_id} [{backend}]")
    model = load(model_id, backend=backend).eval()
    test = _test_split(load_segmentation(dataset), dataset)
    if list(model.card.labels or []) != list(test.classes):
        raise InputError(f"{model_id} segments {model.card.labels}, {dataset} has the classes {test.classes}")
    pictures = [read_image(image) for image, _ in test.pairs]
    step(f"segmenting {len(test)} test images")
    masks = [p["mask"] for start in range(0, len(pictures), PREDICT_CHUNK)
             for p in model.predict(pictures[start:start + PREDICT_CHUNK])]
    n_classes = len(test.classes)
    per_image = np.stack([segmentation_confusion(torch.as_tensor(mask), torch.from_numpy(read_mask(truth, n_classes)),
                                                 n_classes, IGNORE_INDEX).numpy()
                          for mask, (_, truth) in zip(masks, test.pairs)])

    def scores(indices=None) -> dict[str, float]:
        counts = np.bincount(np.arange(len(per_image)) if indices is None else indices, minlength=len(per_image))
        return confusion_scores(torch.from_numpy(np.tensordot(counts, per_image, axes=1)))

    return TaskOutput(metrics=scores(), resampled=ExampleStatistic(len(per_image), scores, n_boot),
                      **_timings(model, pictures, iters), extra={"test_images": len(test)})


# -- MTCNN on faces and non-faces ---------------------------------------------------------------------
def lfw_pictures() -> tuple[list[np.ndarray], np.ndarray]:
    """skimage's ``lfw_subset``: 100 faces then 100 non-faces (25×25 grey), each upscaled ×4 (bicubic) to a
    100×100 RGB picture, with 1 for a face and 0 for none."""
    from PIL import Image
    from skimage import data

    pictures = []
    for image in (data.lfw_subset() * 255).round().astype(np.uint8):
        big = np.asarray(Image.fromarray(image).resize((100, 100), Image.BICUBIC))
        pictures.append(np.repeat(big[..., None], 3, axis=2))
    return pictures, np.array([1] * 100 + [0] * 100)


def face_auc(is_face: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for faces; NaN when only one kind is there (a bootstrap resample can draw that)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_face, scores)) if 0 < is_face.sum() < len(is_face) else float("nan")


def run_mtcnn_lfw(iters: int, n_boot: int, seed: int) -> TaskOutput:
    """Face/non-face AUC of MTCNN's best face score per picture (0 where it finds none), bootstrap CI."""
    from zoo.hub import load

    step(f"loading {MTCNN_ID}")
    model = load(MTCNN_ID).eval()
    pictures, is_face = lfw_pictures()
    step(f"detecting faces in {len(pictures)} pictures")
    scores = np.array([max(p["scores"], default=0.0) for p in model.predict(pictures)])
    return TaskOutput(
        metrics={"auc": face_auc(is_face, scores)},
        resampled=ExampleStatistic(len(scores), lambda i: {"auc": face_auc(is_face[i], scores[i])}, n_boot),
        **_timings(model, pictures, iters),
        extra={"faces_found": int((scores[is_face == 1] > 0).sum()),
               "non_faces_with_a_face": int((scores[is_face == 0] > 0).sum())},
    )


# -- transfer: ImageNet weights vs random init, same wall time --------------------------------------------
def bundled_detector_config() -> tuple[str, dict]:
    """The bundled detector's (recipe, hyper-parameters), as ``vision.train_bundled`` declares them."""
    from vision.train_bundled import CONFIGS

    return CONFIGS[BUNDLED_DETECTOR]


def transfer_arms(config: tuple[str, dict], minutes: float, out_dir: str | Path, *, n_boot: int = 1000,
                  **overrides: Any) -> tuple[dict, ExampleStatistic]:
    """Train ``config`` (recipe name, hyper-parameters; ``overrides`` on top) twice for ``minutes`` of wall time
    each, from ImageNet weights and from random init, into ``out_dir/{in1k,random_init}``; score both on the
    test split. Returns each arm's record and the paired statistic over the test images (``map50``,
    ``map50_random_init``, ``map50_gain`` and the same for ``map``)."""
    from zoo.metrics import DetectionMatches

    records, matches = {}, {}
    for arm, pretrained in (("in1k", True), ("random_init", False)):
        records[arm], found, truths = _train_arm(config, minutes, Path(out_dir) / arm, pretrained, overrides)
        matches[arm] = DetectionMatches(found, truths)
        records[arm]["metrics"] = matches[arm].scores()

    def paired(indices=None) -> dict[str, float]:
        pre, rnd = matches["in1k"].scores(indices), matches["random_init"].scores(indices)
        return {"map50": pre["map50"], "map50_random_init": rnd["map50"], "map50_gain": pre["map50"] - rnd["map50"],
                "map": pre["map"], "map_random_init": rnd["map"], "map_gain": pre["map"] - rnd["map"]}

    return records, ExampleStatistic(matches["in1k"].n_images, paired, n_boot)


def _train_arm(config: tuple[str, dict], minutes: float, out_dir: Path, pretrained: bool,
               overrides: dict) -> tuple[dict, list, list]:
    from vision.detection_data import load_detection
    from zoo.hub import load
    from zoo.registry import get_registry, resolve_ref

    name, params = config
    recipe = resolve_ref(get_registry().recipe(name).recipe).from_overrides(
        params, {"pretrained": pretrained, "train.max_minutes": minutes, "train.progress": False, **overrides})
    step(f"training {'from ImageNet weights' if pretrained else 'from random init'} for {minutes:g} min")
    recipe.run(out_dir, progress=False)
    model = load(out_dir).eval()
    test = _test_split(load_detection(recipe.data, val_fraction=recipe.val_fraction, seed=recipe.seed), recipe.data)
    step(f"detecting in {len(test)} test images")
    found, truths, _ = detections(model, test)
    run = model.card.provenance.get("train", {})
    record = {"pretrained": pretrained, "steps": run.get("steps"), "epochs_run": run.get("epochs_run"),
              "minutes": run.get("minutes"), "stopped_by_budget": run.get("stopped_by_budget"),
              "test_images": len(test)}
    return record, found, truths


def run_transfer(quick: bool, n_boot: int, seed: int) -> TaskOutput:
    """The transfer control: quick, 0.1 min each on a small composite set (:data:`QUICK_COMPOSITE`); else 3 min
    each on ``vision/fashion_composite``. Single seed: the CIs are paired bootstraps over the test images."""
    from vision.composite import fashion_composite

    config = bundled_detector_config()
    minutes = 0.1 if quick else 3.0
    with tempfile.TemporaryDirectory(prefix="zoo-transfer-") as scratch:
        overrides: dict[str, Any] = {"train.seed": seed}
        if quick:
            overrides["data"] = str(fashion_composite(Path(scratch) / "data", seed=0, **QUICK_COMPOSITE).root)
        records, paired = transfer_arms(config, minutes, Path(scratch) / "runs", n_boot=n_boot, **overrides)
    return TaskOutput(metrics=paired.of(None), resampled=paired,
                      extra={"minutes_each": minutes, "recipe": config[0], "arms": records})
