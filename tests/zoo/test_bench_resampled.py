"""Bootstrap CIs of metrics that are no mean of per-example values: ExampleStatistic, COCO mAP re-accumulated
on resampled images (zoo.metrics.DetectionMatches), per-image confusion matrices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.bench import BenchTask, ExampleStatistic, TaskOutput, run_tasks
from zoo.bench_stats import aggregate, bootstrap_statistic_ci95
from zoo.errors import InputError
from zoo.metrics import confusion_scores, segmentation_confusion, segmentation_scores


def ratio_statistic(hits: np.ndarray, totals: np.ndarray) -> ExampleStatistic:
    """A pooled ratio (sum of hits / sum of totals): like mIoU, not the mean of the per-example ratios."""
    return ExampleStatistic(len(hits), lambda i: {"pooled": float(hits[i].sum() / totals[i].sum())}, n_boot=400)


def test_a_resampled_statistic_gets_a_bootstrap_interval_around_its_value():
    rng = np.random.default_rng(0)
    totals = rng.integers(1, 50, 300).astype(float)
    hits = rng.binomial(totals.astype(int), 0.7).astype(float)
    statistic = ratio_statistic(hits, totals)
    (lo, hi), = bootstrap_statistic_ci95(statistic).values()
    pooled = hits.sum() / totals.sum()
    assert lo < pooled < hi and hi - lo < 0.05
    assert bootstrap_statistic_ci95(statistic) == bootstrap_statistic_ci95(statistic)  # seeded
    row = aggregate([TaskOutput(metrics={"pooled": pooled, "plain": 1.0}, resampled=statistic)])
    assert row["metrics"]["pooled"]["ci95"] == [lo, hi]
    assert row["metrics"]["pooled"]["ci_method"] == "bootstrap-examples"
    assert row["metrics"]["plain"]["ci95"] is None  # a metric the statistic does not give has no interval


def test_undefined_resamples_are_left_out_and_intervals_stay_in_the_metric_range():
    def auc_like(indices):
        positives = (indices < 3).sum()  # 3 positive examples of 100: some resamples have none
        return {"auc": float("nan") if positives == 0 else 1.0 - 0.001 * positives, "never": float("nan")}

    intervals = bootstrap_statistic_ci95(ExampleStatistic(100, auc_like, n_boot=300))
    assert set(intervals) == {"auc"} and intervals["auc"][1] <= 1.0
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_statistic_ci95(ExampleStatistic(10, auc_like, n_boot=0))
    always_above = ExampleStatistic(10, lambda i: {"map": 1.0 + 0.01 * len(i)}, n_boot=10)
    row = aggregate([TaskOutput(metrics={"map": 1.0}, resampled=always_above)])
    assert row["metrics"]["map"]["ci95"] == [1.0, 1.0]  # mAP lies in [0, 1]: clipped


def test_several_seeds_keep_the_t_interval_and_the_engine_writes_the_bootstrap_into_the_row(tmp_path):
    statistic = ratio_statistic(np.array([1.0, 2, 3, 4]), np.array([4.0, 4, 4, 4]))
    seeds = aggregate([TaskOutput(metrics={"pooled": v}, resampled=statistic) for v in (0.5, 0.6, 0.7)])
    assert seeds["metrics"]["pooled"]["ci_method"] == "t-over-seeds"
    task = BenchTask(name="ratio", model="m", dataset="d",
                     run=lambda seed: TaskOutput(metrics={"pooled": 0.625}, resampled=statistic))
    row, = run_tasks([task], suite="s", out_dir=tmp_path, progress=False)
    assert row["status"] == "ok" and row["metrics"]["pooled"]["ci_method"] == "bootstrap-examples"
    assert row["metrics"]["pooled"]["ci95"][0] < 0.625 < row["metrics"]["pooled"]["ci95"][1]


def random_detections(n_images: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Truth boxes, and predictions: the truths jittered (some mislabelled) plus low-scored clutter."""
    rng = np.random.default_rng(seed)
    predictions, targets = [], []
    for _ in range(n_images):
        n, clutter = rng.integers(0, 4), rng.integers(0, 8)
        corner = rng.uniform(0, 100, (n + clutter, 2))
        boxes = np.hstack([corner, corner + rng.uniform(5, 40, (n + clutter, 2))])
        labels = rng.integers(1, 5, n + clutter)
        targets.append({"boxes": torch.tensor(boxes[:n]), "labels": torch.tensor(labels[:n])})
        found = boxes + np.concatenate([rng.normal(0, 3, (n, 4)), np.zeros((clutter, 4))])
        predictions.append({"boxes": torch.tensor(found), "labels": torch.tensor(labels),
                            "scores": torch.tensor(np.concatenate([rng.uniform(0.3, 1, n),
                                                                   rng.uniform(0, 0.6, clutter)]))})
    return predictions, targets


def test_coco_map_re_accumulated_on_resampled_images_is_cocoeval_on_those_images():
    pytest.importorskip("pycocotools")
    from zoo.metrics import DetectionMatches, detection_map

    predictions, targets = random_detections(60)
    matches = DetectionMatches(predictions, targets)
    whole = detection_map(predictions, targets)
    assert matches.scores() == pytest.approx(whole, abs=1e-12) and 0.1 < whole["map50"] < 0.95
    for seed in range(3):
        drawn = np.random.default_rng(seed).integers(0, 60, 60)  # repeats: an image drawn twice counts twice
        again = detection_map([predictions[i] for i in drawn], [targets[i] for i in drawn])
        assert matches.scores(drawn) == pytest.approx(again, abs=1e-12)


def test_coco_matches_without_truth_or_predictions_give_the_constant_scores():
    pytest.importorskip("pycocotools")
    from zoo.metrics import DetectionMatches

    predictions, targets = random_detections(5)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
              "scores": torch.zeros(0)}] * 5
    assert DetectionMatches(empty, targets).scores([0, 0, 1]) == {"map": 0.0, "map50": 0.0}
    no_truth = DetectionMatches(predictions, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}] * 5)
    assert all(np.isnan(v) for v in no_truth.scores().values())


def test_per_image_confusion_matrices_add_up_to_the_set_scores():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.integers(0, 4, (6, 16, 16)))
    truth[0, :4] = 255  # ignored pixels
    predicted = torch.where(torch.from_numpy(rng.random((6, 16, 16))) < 0.7, truth % 4,
                            torch.from_numpy(rng.integers(0, 4, (6, 16, 16))))
    per_image = torch.stack([segmentation_confusion(p, t, 4) for p, t in zip(predicted, truth)])
    assert confusion_scores(per_image.sum(0)) == segmentation_scores(predicted, truth, 4)
