"""The detection and segmentation cells of `zoo bench vision`, MTCNN on lfw_subset, and the transfer control arm
(vision/bench_dense.py), on a tiny composite set."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.vision.test_mtcnn import needs_wheel
from vision import bench_dense
from vision.composite import fashion_composite
from zoo.bench_stats import aggregate
from zoo.card import ModelCard
from zoo.errors import InputError

TINY = {"epochs": 1, "batch_size": 4, "progress": False}


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    return fashion_composite(tmp_path_factory.mktemp("composite") / "set", seed=0, train=8, val=2, test=4)


class FakeDetector:
    """Gives the true boxes of each test picture (found by its pixels), or one box of ``label`` everywhere."""

    num_params = 7

    def __init__(self, composite, label: str | None = None):
        from vision.detection_data import load_detection
        from vision.images import read_image

        test = load_detection(str(composite.root)).test
        self.card = ModelCard(id="vision/fake.detector", domain="vision", task="object-detection", architecture="x")
        self.truth = {read_image(r.image).tobytes(): r for r in test.records}
        self.classes, self.label = test.classes, label

    def eval(self):
        return self

    def predict(self, pictures):
        if not isinstance(pictures, list):
            return self.predict([pictures])[0]
        found = []
        for picture in pictures:
            record = self.truth[picture.tobytes()]
            labels = [self.label or self.classes[i] for i in record.labels]
            found.append({"boxes": record.boxes.tolist(), "scores": [0.9] * len(labels), "labels": labels})
        return found


def test_a_detector_is_scored_by_coco_map_with_a_bootstrap_ci_and_timed_at_batch_one(composite, monkeypatch):
    monkeypatch.setattr("zoo.hub.load", lambda model_id, backend: FakeDetector(composite))
    output = bench_dense.run_detector("vision/fake.detector", str(composite.root), 2, 50, seed=0, backend="torch")
    row = aggregate([output])
    assert output.metrics == {"map": 1.0, "map50": 1.0}
    assert row["metrics"]["map"]["ci95"] == pytest.approx([1.0, 1.0])
    assert row["metrics"]["map"]["ci_method"] == "bootstrap-examples"
    assert row["latency_ms"]["batch_size"] == 1 and row["latency_ms"]["n"] >= 2
    assert row["throughput"]["unit"] == "images/s" and row["params"] == 7
    assert output.extra["test_images"] == 4 and output.extra["boxes_found"] == output.extra["boxes_true"] > 0


def test_a_detector_of_other_classes_is_refused_by_name(composite, monkeypatch):
    monkeypatch.setattr("zoo.hub.load", lambda model_id, backend: FakeDetector(composite, label="Zebra"))
    with pytest.raises(InputError, match="Zebra"):
        bench_dense.run_detector("vision/fake.detector", str(composite.root), 2, 50, seed=0, backend="torch")


class HalfSegmenter:
    """Gives each test picture's true mask with its top half called background."""

    num_params = 3

    def __init__(self, composite):
        from vision.images import read_image
        from vision.segmentation_data import load_segmentation, read_mask

        test = load_segmentation(str(composite.root)).test
        self.card = ModelCard(id="vision/fake.segmenter", domain="vision", task="semantic-segmentation",
                              architecture="x", labels=test.classes)
        self.truth = {read_image(image).tobytes(): read_mask(mask) for image, mask in test.pairs}

    def eval(self):
        return self

    def predict(self, pictures):
        if not isinstance(pictures, list):
            return self.predict([pictures])[0]
        masks = [self.truth[picture.tobytes()].copy() for picture in pictures]
        for mask in masks:
            mask[: len(mask) // 2] = 0
        return [{"mask": mask, "labels": dict(enumerate(self.card.labels))} for mask in masks]


def test_a_segmenter_is_scored_by_miou_and_pixel_accuracy_from_the_test_masks(composite, monkeypatch):
    from zoo.metrics import segmentation_scores

    segmenter = HalfSegmenter(composite)
    monkeypatch.setattr("zoo.hub.load", lambda model_id, backend: segmenter)
    output = bench_dense.run_segmenter("vision/fake.segmenter", str(composite.root), 2, 100, seed=0, backend="torch")
    truths = np.stack(list(segmenter.truth.values()))
    found = truths.copy()
    found[:, : truths.shape[1] // 2] = 0
    expected = segmentation_scores(torch.from_numpy(found), torch.from_numpy(truths), len(segmenter.card.labels))
    assert output.metrics == pytest.approx(expected, abs=1e-12) and expected["pixel_accuracy"] < 1.0
    row = aggregate([output])
    lo, hi = row["metrics"]["miou"]["ci95"]
    assert lo <= output.metrics["miou"] <= hi <= 1.0 and row["latency_ms"]["batch_size"] == 1


@pytest.mark.slow  # a segmenter trained for two steps, then scored: ~10 s on an idle 2-core machine
def test_a_trained_segmenter_is_scored_as_its_own_predictions_score(composite, tmp_path):
    import zoo
    from vision.dense_recipes import SemanticSegmentationRecipe
    from vision.segmentation_data import load_segmentation, read_mask
    from zoo.metrics import segmentation_scores

    # Random init: no ImageNet weights to convert, and any network's masks make the point.
    SemanticSegmentationRecipe(data=str(composite.root), image_size=64, pretrained=False,
                               train=TINY).run(tmp_path, progress=False)
    output = bench_dense.run_segmenter(str(tmp_path), str(composite.root), 2, 100, seed=0, backend="torch")
    test, model = load_segmentation(str(composite.root)).test, zoo.load(tmp_path)
    masks = [torch.as_tensor(model.predict(model.adapter.read(image))["mask"]) for image, _ in test.pairs]
    truths = [torch.from_numpy(read_mask(mask)) for _, mask in test.pairs]
    expected = segmentation_scores(torch.stack(masks), torch.stack(truths), len(test.classes))
    assert output.metrics == pytest.approx(expected, abs=1e-12)
    lo, hi = aggregate([output])["metrics"]["miou"]["ci95"]
    assert 0.0 <= lo <= output.metrics["miou"] <= hi <= 1.0


def test_a_segmenter_of_other_classes_is_refused(composite, monkeypatch):
    other = FakeDetector(composite)
    other.card.labels = ["background", "cat"]
    monkeypatch.setattr("zoo.hub.load", lambda model_id, backend: other)
    with pytest.raises(InputError, match="classes"):
        bench_dense.run_segmenter("vision/fake.segmenter", str(composite.root), 2, 50, seed=0, backend="torch")


@pytest.mark.slow  # two detectors trained and scored: ~15 s on an idle 2-core machine
def test_the_transfer_arms_train_for_the_same_budget_and_are_paired_on_the_test_images(composite, tmp_path):
    records, paired = bench_dense.transfer_arms(
        bench_dense.bundled_detector_config(), 1e-4, tmp_path, n_boot=20, data=str(composite.root), image_size=64,
        score_thresh=0.0, **{"train.batch_size": 4})
    assert [r["pretrained"] for r in records.values()] == [True, False]
    # A budget spent at once: each arm stops at its first optimizer step, scored and saved all the same.
    assert all(r["stopped_by_budget"] and r["steps"] == 1 and r["test_images"] == 4 for r in records.values())
    scores = paired.of(None)
    assert scores["map50"] == records["in1k"]["metrics"]["map50"]
    assert scores["map50_gain"] == scores["map50"] - scores["map50_random_init"]
    assert {"map", "map_random_init", "map_gain"} <= set(scores)
    assert (tmp_path / "in1k" / "card.json").is_file() and (tmp_path / "random_init" / "card.json").is_file()


def test_the_suite_takes_every_pretrained_detector_and_segmenter_with_a_test_metric(monkeypatch):
    cards = {
        "vision/det.a": ModelCard(id="vision/det.a", domain="vision", task="object-detection", architecture="x",
                                  metrics=[{"name": "map50", "value": 0.5, "split": "test", "dataset": "vision/d1"},
                                           {"name": "map", "value": 0.3, "split": "test", "dataset": "vision/d1"}]),
        "vision/det.val_only": ModelCard(id="vision/det.val_only", domain="vision", task="object-detection",
                                         architecture="x", metrics=[{"name": "map50", "value": 0.5, "split": "val",
                                                                     "dataset": "vision/d1"}]),
        "vision/seg.b": ModelCard(id="vision/seg.b", domain="vision", task="semantic-segmentation", architecture="x",
                                  metrics=[{"name": "miou", "value": 0.5, "split": "test", "dataset": "vision/d2"}]),
    }

    def listed(pattern, task=None, pretrained=None):
        return [i for i, c in cards.items() if task in (None, c.task)] + ["vision/mtcnn.face"] * (task is None)

    monkeypatch.setattr("zoo.hub.list_models", listed)
    monkeypatch.setattr("zoo.hub.info", cards.__getitem__)
    monkeypatch.setattr("vision.datasets.fashion_mnist_available", lambda: True)
    tasks = {task.name: task for task in bench_dense.dense_tasks(quick=True)}
    assert list(tasks) == ["det.a@d1", "seg.b@d2", "mtcnn.face@lfw_subset",
                           "fcos-random-init-vs-in1k@fashion_composite"]
    assert tasks["det.a@d1"].per_backend and tasks["seg.b@d2"].dataset == "vision/d2"
    transfer = tasks["fcos-random-init-vs-in1k@fashion_composite"]
    assert transfer.control and transfer.dataset == "fashion_composite 32/8/16 (quick)"  # not the registered set


def test_the_transfer_control_trains_the_bundled_detector_s_config():
    from vision.train_bundled import CONFIGS

    assert bench_dense.bundled_detector_config() == CONFIGS["fcos_efficientnet_lite0.fashion_composite"]
    assert bench_dense.bundled_detector_config()[0] == "object-detection"


@needs_wheel
def test_mtcnn_tells_lfw_faces_from_non_faces():
    output = bench_dense.run_mtcnn_lfw(2, 100, seed=0)
    lo, hi = aggregate([output])["metrics"]["auc"]["ci95"]
    assert output.metrics["auc"] >= 0.98 and lo <= output.metrics["auc"] <= hi <= 1.0
    assert output.extra["faces_found"] >= 95


def test_an_auc_of_one_kind_only_is_undefined_not_an_error():
    assert np.isnan(bench_dense.face_auc(np.array([1, 1]), np.array([0.2, 0.9])))
    assert bench_dense.face_auc(np.array([1, 0]), np.array([0.9, 0.2])) == 1.0


def test_the_suite_modules_import_neither_torch_nor_their_metrics_libraries():
    code = ("import sys, vision.bench, vision.bench_dense; "
            "print(sorted(m for m in ('torch', 'sklearn', 'pycocotools', 'skimage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
