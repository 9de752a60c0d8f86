"""The object-detection and semantic-segmentation recipes: tiny runs on a small composite set, exact resume,
and the metrics on hand-made boxes and masks."""
import json
import math
import shutil

import numpy as np
import pytest
import torch

from vision.composite import fashion_composite
from vision.dense_recipes import ObjectDetectionRecipe, SemanticSegmentationRecipe
from zoo.metrics import detection_map, segmentation_scores

TINY = {"epochs": 2, "batch_size": 2, "log_every_steps": 1, "keep_checkpoints": 2, "progress": False}


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    return fashion_composite(tmp_path_factory.mktemp("composite") / "set", train=4, val=2, test=2)


def events(out_dir, kind):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == kind]


# -- data and backbone ---------------------------------------------------------------
def test_split_folders_of_the_composite_feed_both_readers(composite):
    from vision.detection_data import load_detection
    from vision.segmentation_data import load_segmentation

    boxes, masks = load_detection(str(composite.root)), load_segmentation(str(composite.root))
    assert [len(boxes.train), len(boxes.val), len(boxes.test)] == [4, 2, 2] == [len(masks.train), len(masks.val),
                                                                            len(masks.test)]
    assert boxes.classes[1:] == masks.classes[1:] == composite.classes[1:]
    image, target = boxes.test[0]
    _, mask = masks.test[0]
    assert set(target["labels"].tolist()) == set(mask.unique().tolist()) - {0}  # the same objects, both ways


def test_split_mask_folders_must_agree_on_their_classes(composite, tmp_path):
    from vision.segmentation_data import load_segmentation
    from zoo.errors import InputError

    copy = tmp_path / "set"
    shutil.copytree(composite.root, copy)
    (copy / "val" / "classes.txt").write_text("background\nsomething else\n")
    with pytest.raises(InputError, match="classes differ"):
        load_segmentation(str(copy))


def test_backbone_weights_must_cover_the_feature_network():
    from vision.models.efficientnet import efficientnet_lite0_features, load_classifier_weights
    from zoo.errors import InputError

    features = efficientnet_lite0_features((2, 4))
    state = {k: v.clone() for k, v in features.state_dict().items()}
    load_classifier_weights(features, {**state, "classifier.weight": torch.zeros(3, 3)})  # the head is ignored
    state.pop("conv_stem.weight")
    with pytest.raises(InputError, match="conv_stem.weight"):
        load_classifier_weights(features, state)


# -- metrics ---------------------------------------------------------------------
TRUTH = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]]), "labels": torch.tensor([1, 2])}]


def found(boxes, scores, labels):
    return [{"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores),
             "labels": torch.tensor(labels)}]


def test_detection_map_of_exact_boxes_is_one():
    scores = detection_map(found([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [1, 2]), TRUTH)
    assert scores == pytest.approx({"map": 1.0, "map50": 1.0})


def test_detection_map_counts_each_iou_threshold():
    # The second box has IoU 400/500 = 0.8: a hit at thresholds .50 ... .80 (7 of 10), so its class's AP is 0.7.
    scores = detection_map(found([[0, 0, 10, 10], [20, 20, 40, 45]], [0.9, 0.8], [1, 2]), TRUTH)
    assert scores == pytest.approx({"map": 0.85, "map50": 1.0})


def test_detection_map_of_wrong_labels_and_no_boxes():
    assert detection_map(found([[0, 0, 10, 10]], [0.9], [2]), TRUTH) == {"map": 0.0, "map50": 0.0}
    assert detection_map(found([], [], []), TRUTH) == {"map": 0.0, "map50": 0.0}
    # A confident false positive ranked above the only true box of class 1 halves that class's precision.
    one_box = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
    scores = detection_map(found([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.5], [1, 1]), one_box)
    assert scores["map50"] == pytest.approx(0.5, abs=0.01)


def test_segmentation_scores_by_hand():
    predicted = torch.tensor([[0, 0], [1, 1]])
    target = torch.tensor([[0, 1], [1, 255]])  # 255: ignored
    # class 0: 1 hit / union 2; class 1: 1 hit / union 2; 2 of 3 counted pixels right.
    assert segmentation_scores(predicted, target, num_classes=3) == pytest.approx(
        {"miou": 0.5, "pixel_accuracy": 2 / 3})
    assert segmentation_scores(target.clamp(max=1), target, 3) == pytest.approx({"miou": 1.0, "pixel_accuracy": 1.0})


# -- recipes ---------------------------------------------------------------------
def detection_recipe(composite, **train):
    return ObjectDetectionRecipe(data=str(composite.root), image_size=64, score_thresh=0.0,
                                 train={**TINY, "lr": 2e-3, **train})


def test_detection_recipe_trains_saves_and_resumes_exactly(composite, tmp_path):
    import zoo

    whole = tmp_path / "whole"
    result = detection_recipe(composite).run(whole, progress=False)
    epochs = events(whole, "eval")
    losses = [event["loss"] for event in events(whole, "train")]
    assert all(math.isfinite(loss) for loss in losses) and epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert {m["name"] for m in result.metrics} == {"map", "map50"} and {"val_map50"} <= set(epochs[0])

    model = zoo.load(whole)
    picture = composite.test / "images" / "000001.png"
    prediction = model.predict(model.adapter.read(picture))
    assert set(prediction) == {"boxes", "scores", "labels"} and len(prediction["boxes"]) > 0
    assert set(prediction["labels"]) <= set(composite.classes[1:])
    boxes = np.asarray(prediction["boxes"])
    assert boxes.min() >= 0 and boxes[:, 2:].max() <= 128 and (boxes[:, 2:] >= boxes[:, :2]).all()

    # Resume from the checkpoint after the first epoch: the same weights and log as the run that went through.
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    first_epoch = resumed / "checkpoints" / "step-00000002"
    (resumed / "weights.safetensors").unlink()
    detection_recipe(composite).run(resumed, resume=str(first_epoch), progress=False)
    assert (resumed / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
    assert (resumed / "weights.safetensors").read_bytes() == (whole / "weights.safetensors").read_bytes()


def test_segmentation_recipe_trains_and_predicts_masks(composite, tmp_path):
    import zoo

    out = tmp_path / "seg"
    result = SemanticSegmentationRecipe(data=str(composite.root), image_size=64,
                                        train={**TINY, "lr": 3e-3}).run(out, progress=False)
    epochs = events(out, "eval")
    assert all(math.isfinite(event["train_loss"]) for event in epochs)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert {m["name"] for m in result.metrics} == {"miou", "pixel_accuracy"}

    model = zoo.load(out)
    prediction = model.predict(model.adapter.read(composite.test / "images" / "000001.png"))
    assert prediction["mask"].shape == (128, 128)  # at the picture's size, not the network's 64
    assert prediction["labels"] == dict(enumerate(composite.classes))
    assert 0 <= prediction["mask"].min() and prediction["mask"].max() < len(composite.classes)

    from zoo.recipes import reproduce  # the card's recorded recipe runs again, to the same numbers

    again = reproduce(str(out), tmp_path / "again", progress=False)
    assert all(row["ok"] and row["diff"] == 0 for row in again.rows) and len(again.rows) == 4
    assert again.weights == again.card_weights  # bit for bit


def test_the_fpn_decoder_trains_on_the_pretrained_backbone(composite, tmp_path):
    import zoo

    out = tmp_path / "fpn"
    recipe = SemanticSegmentationRecipe(data=str(composite.root), image_size=64, decoder="fpn", fine_channels=8,
                                        train={**TINY, "epochs": 1, "lr": 3e-3})
    recipe.run(out, progress=False)
    card = json.loads((out / "card.json").read_text())
    assert card["architecture"] == "fpn_efficientnet_lite0" and card["arch_args"]["fine_channels"] == 8
    assert card["provenance"]["recipe"]["params"]["decoder"] == "fpn"
    model = zoo.load(out)
    backbone = zoo.load("vision/efficientnet_lite0.in1k").net.state_dict()
    trained = model.net.backbone.state_dict()
    assert torch.allclose(trained["conv_stem.weight"], backbone["conv_stem.weight"], atol=0.05)  # ImageNet's, not noise
    prediction = model.predict(model.adapter.read(composite.test / "images" / "000001.png"))
    assert prediction["mask"].shape == (128, 128)


def test_recipes_are_the_tasks_defaults_and_refuse_bad_values():
    from zoo.errors import InputError
    from zoo.registry import get_registry

    registry = get_registry()
    assert registry.task("object-detection").recipe == "object-detection"
    assert registry.task("semantic-segmentation").recipe == "semantic-segmentation"
    with pytest.raises(InputError, match="image_size"):
        ObjectDetectionRecipe(image_size=8)
    with pytest.raises(InputError, match="score_thresh"):
        ObjectDetectionRecipe(score_thresh=1.5)
    with pytest.raises(InputError, match=r"decoder must be one of \['fpn', 'lraspp'\], got 'unet'"):
        SemanticSegmentationRecipe(decoder="unet")


def test_zoo_finetune_task_trains_the_tasks_default_model(composite, tmp_path):
    from tests.zoo.test_cli import run_console_script

    out = tmp_path / "seg"
    result = run_console_script("finetune", "--task", "semantic-segmentation", "--data", str(composite.root),
                                "--out", str(out), "--epochs", "1", "--set", "image_size=64",
                                "--set", "train.batch_size=4")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["architecture"] == "lraspp_efficientnet_lite0" and card["labels"] == composite.classes
    assert card["provenance"]["recipe"]["params"]["model"] == "vision/efficientnet_lite0.in1k"

    refused = run_console_script("finetune", "--data", str(composite.root), "--out", str(tmp_path / "none"))
    assert refused.returncode != 0 and "--task TASK" in refused.stderr


def test_the_error_split_tells_outline_errors_from_class_errors():
    from benchmarks.segmentation_error_split import error_split

    classes = ["background", "shirt", "bag"]
    truth = np.zeros((8, 8), np.uint8)
    truth[1:4, 1:4], truth[5:8, 5:8] = 1, 2
    items = [(1, truth == 1), (2, truth == 2)]
    predicted = truth.copy()
    predicted[5:8, 5:8] = 1  # the bag called a shirt: a class error only
    predicted[1, 1] = 0  # one shirt pixel missed: an outline error only
    split = error_split([predicted], [truth], [items], classes)
    assert split["item_accuracy"] == 0.5 and split["items"] == 2
    assert split["foreground_iou"] == round(17 / 18, 4)
    assert split["miou_with_true_outlines"] == round((1 + 9 / 18 + 0) / 3, 4)  # the bag painted shirt
    assert split["miou_with_true_classes"] == round((46 / 47 + 8 / 9 + 1) / 3, 4)
    assert split["most_confused_with"]["bag"] == "shirt (100.0% of its pixels)"
