"""``hf:`` detectors and segmenters, offline: tiny random DETR, YOLOS, RT-DETR and SegFormer checkpoints written by
transformers' ``save_pretrained`` and laid out as the Hugging Face cache holds them, loaded as a user loads a repo."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from tests.nlp.helpers import COMMIT, install_in_hf_cache
from zoo.errors import InputError

transformers = pytest.importorskip("transformers")

NAMES = {0: "N/A", 1: "cat", 2: "dog"}  # DETR's COCO layout: class 0 is the unused slot


def _detr(folder):
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage1", "stage2"])
    config = DetrConfig(backbone_config=backbone, d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=16,
                        decoder_ffn_dim=16, encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10,
                        id2label=NAMES)
    return DetrForObjectDetection(config), DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})


def _yolos(folder):
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    config = YolosConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                         image_size=[64, 64], patch_size=16, num_detection_tokens=5, id2label=NAMES)
    return YolosForObjectDetection(config), YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})


def _rtdetr(folder):
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor, RTDetrResNetConfig

    backbone = RTDetrResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16], depths=[1, 1, 1], layer_type="basic",
                                  out_features=["stage1", "stage2", "stage3"])
    config = RTDetrConfig(backbone_config=backbone, encoder_hidden_dim=16, encoder_in_channels=[8, 16, 16],
                          feat_strides=[8, 16, 32], encoder_layers=1, encoder_ffn_dim=16, encoder_attention_heads=2,
                          d_model=16, num_queries=10, decoder_layers=1, decoder_ffn_dim=16, decoder_attention_heads=2,
                          decoder_in_channels=[16, 16, 16], num_feature_levels=3, decoder_n_points=2, num_denoising=0,
                          id2label={0: "cat", 1: "dog"})
    return RTDetrForObjectDetection(config), RTDetrImageProcessor(size={"height": 64, "width": 64})


def _segformer(folder):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                             num_attention_heads=[1, 2], decoder_hidden_size=16, patch_sizes=[7, 3], strides=[4, 2],
                             mlp_ratios=[2, 2], id2label={0: "background", 1: "cat", 2: "dog"})
    return SegformerForSemanticSegmentation(config), SegformerImageProcessor(size={"height": 64, "width": 64})


BUILDERS = {"detr": _detr, "yolos": _yolos, "rtdetr": _rtdetr, "segformer": _segformer}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each tiny checkpoint as transformers saves it: config.json, model.safetensors, preprocessor_config.json."""
    root = tmp_path_factory.mktemp("hf-dense")
    for name, build in BUILDERS.items():
        torch.manual_seed(0)
        model, processor = build(root / name)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    return root


@pytest.fixture
def hub(checkpoints, isolated_zoo_home):
    """The checkpoints in this test's Hugging Face cache (offline) as tiny-org/NAME; returns the snapshots."""
    return {name: install_in_hf_cache(checkpoints / name, isolated_zoo_home / "hf" / "hub", f"tiny-org/{name}")
            for name in BUILDERS}


def _picture(height, width, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _reference_detections(folder, pictures, threshold):
    """transformers used directly: the processor, the model and the processor's post-processing."""
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForObjectDetection.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(**processor(images=pictures, return_tensors="pt"))
    sizes = [(p.height, p.width) for p in pictures]
    return processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=sizes)


@pytest.mark.parametrize("name", ["detr", "yolos", pytest.param("rtdetr", marks=pytest.mark.slow)])  # RT-DETR: ~8 s
def test_detectors_load_from_the_hf_cache_with_boxes_in_input_pixels(name, hub, checkpoints):
    model = zoo.load(f"hf:tiny-org/{name}", threshold=0.0, device="cpu")
    card = model.card
    config = json.loads((checkpoints / name / "config.json").read_text())
    assert card.task == "object-detection" and card.architecture == "hf_object_detector"
    assert card.labels == [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    weights = card.files["model.safetensors"]
    assert weights["source"] == f"hf://tiny-org/{name}/model.safetensors@{COMMIT}"
    assert weights["sha256"] == zoo.cache.sha256_file(checkpoints / name / "model.safetensors")
    pictures = [_picture(50, 70), _picture(64, 40, seed=1)]
    predictions = model.predict(pictures)
    reference = _reference_detections(checkpoints / name, pictures, threshold=0.0)
    for picture, prediction, expected in zip(pictures, predictions, reference):
        boxes = np.asarray(prediction["boxes"]).reshape(-1, 4)
        assert len(boxes) == len(prediction["scores"]) == len(prediction["labels"]) == len(expected["boxes"]) > 0
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= picture.width).all() \
            and (boxes[:, [1, 3]] <= picture.height).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
        assert all(0 <= s <= 1 for s in prediction["scores"]) and set(prediction["labels"]) <= set(card.labels)
        clipped = expected["boxes"].clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, picture.width)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, picture.height)
        np.testing.assert_allclose(boxes, clipped.numpy(), atol=1e-3)  # transformers' own boxes, clipped
        assert prediction["labels"] == [card.labels[i] for i in expected["labels"].tolist()]


def test_segformer_masks_are_the_processors_at_the_input_size(hub, checkpoints):
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    model = zoo.load("hf:tiny-org/segformer", device="cpu")
    assert model.card.task == "semantic-segmentation" and model.card.architecture == "hf_semantic_segmenter"
    assert model.card.labels == ["background", "cat", "dog"]
    processor = AutoImageProcessor.from_pretrained(checkpoints / "segformer")
    reference = AutoModelForSemanticSegmentation.from_pretrained(checkpoints / "segformer").eval()
    for picture in (_picture(50, 70), _picture(97, 33, seed=2)):
        prediction = model.predict(picture)
        assert prediction["mask"].shape == (picture.height, picture.width)
        assert prediction["mask"].min() >= 0 and prediction["mask"].max() < 3
        assert prediction["labels"] == {0: "background", 1: "cat", 2: "dog"}
        with torch.no_grad():
            outputs = reference(**processor(images=picture, return_tensors="pt"))
        [expected] = processor.post_process_semantic_segmentation(outputs, target_sizes=[(picture.height, picture.width)])
        np.testing.assert_array_equal(prediction["mask"], expected.numpy())  # the same pixels, the same math


@pytest.mark.parametrize("name", ["detr", "segformer"])
def test_a_saved_model_rebuilds_without_the_hub(name, hub, tmp_path, monkeypatch):
    options = {"threshold": 0.0} if name == "detr" else {}
    model = zoo.load(f"hf:tiny-org/{name}", device="cpu", **options)
    picture = _picture(40, 56)
    before = model.predict(picture)
    model.save(tmp_path / "saved")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    again = zoo.load(tmp_path / "saved", device="cpu")
    assert again.card.architecture == model.card.architecture and again.card.labels == model.card.labels
    after = again.predict(picture)
    if name == "detr":
        np.testing.assert_allclose(after["boxes"], before["boxes"], atol=1e-5)
        assert after["labels"] == before["labels"]
    else:
        np.testing.assert_array_equal(after["mask"], before["mask"])
    card = json.loads((tmp_path / "saved" / "card.json").read_text())
    card["arch_args"]["processor"]["image_processor_type"] = "os.system"  # a folder names transformers' own only
    (tmp_path / "saved" / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="'os.system' is not an image processor transformers knows"):
        zoo.load(tmp_path / "saved")


def test_the_task_is_the_checkpoints_own_and_other_tasks_are_refused(hub, tmp_path):
    from tests.nlp.helpers import make_tiny_bert

    with pytest.raises(InputError, match="DetrForObjectDetection checkpoint .*not semantic-segmentation"):
        zoo.load("hf:tiny-org/detr", task="semantic-segmentation")
    bert = make_tiny_bert(tmp_path / "bert")
    with pytest.raises(InputError, match="BertForSequenceClassification checkpoint, not object-detection"):
        zoo.load(f"hf:{bert}", task="object-detection")
    assert zoo.load(f"hf:{bert}", device="cpu").card.task == "text-classification"  # still nlp's
    classifier = tmp_path / "vit"
    classifier.mkdir()
    (classifier / "config.json").write_text(json.dumps({"model_type": "vit", "architectures": ["ViTForImageClassification"]}))
    with pytest.raises(InputError, match=r"ViTForImageClassification checkpoint \(image classification\)"):
        zoo.load(f"hf:{classifier}")


def test_bad_options_and_incomplete_checkpoints_are_refused(hub, checkpoints, tmp_path):
    import shutil

    with pytest.raises(InputError, match="threshold is a detector's score cut"):
        zoo.load("hf:tiny-org/segformer", threshold=0.3)
    with pytest.raises(InputError, match="threshold is a detector's score cut"):
        zoo.load("hf:tiny-org/detr", threshold="high")
    with pytest.raises(InputError, match="take the load options task, revision and threshold"):
        zoo.load("hf:tiny-org/detr", trust_remote_code=True)
    with pytest.raises(InputError, match="a new head of 5 is not built"):
        zoo.load("hf:tiny-org/detr", num_classes=5)
    fresh = zoo.load("hf:tiny-org/detr", pretrained=False, num_classes=5, device="cpu")
    assert fresh.card.labels == [f"class_{i}" for i in range(5)] and not fresh.card.files
    bare = tmp_path / "no-processor"
    shutil.copytree(checkpoints / "detr", bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(InputError, match="no preprocessor_config.json"):
        zoo.load(f"hf:{bare}")


def test_listing_and_info_reach_the_cached_checkpoints(hub):
    assert set(zoo.list_models("hf:tiny-org/*")) == {f"hf:tiny-org/{name}" for name in BUILDERS}
    assert zoo.info("hf:tiny-org/yolos").task == "object-detection"


def test_zoo_predict_writes_coco_json_and_masks_and_draws(hub, tmp_path):
    from pycocotools.coco import COCO
    from typer.testing import CliRunner

    from zoo.cli import app

    for name, size in {"a": (50, 70), "b": (48, 40)}.items():
        _picture(*size).save(tmp_path / f"{name}.png")
    zoo.load("hf:tiny-org/detr", threshold=0.0, device="cpu").save(tmp_path / "detr")  # every query a box
    runner = CliRunner()
    boxes = runner.invoke(app, ["predict", str(tmp_path / "detr"), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                "--out", str(tmp_path / "dets"), "--draw"])
    assert boxes.exit_code == 0, boxes.output
    document = json.loads((tmp_path / "dets" / "detections.json").read_text())
    assert document["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]  # slot 0 (N/A) is none
    assert {a["category_id"] for a in document["annotations"]} <= {1, 2}
    uncategorised = int(document.get("info", {}).get("description", "0").split()[0])
    assert len(document["annotations"]) + uncategorised == 20  # ten queries a picture, none lost unsaid
    assert len(COCO(str(tmp_path / "dets" / "detections.json")).getAnnIds()) == len(document["annotations"])
    with Image.open(tmp_path / "dets" / "a_boxes.png") as drawn:
        assert drawn.size == (70, 50)
    masks = runner.invoke(app, ["predict", "hf:tiny-org/segformer", str(tmp_path / "b.png"),
                                "--out", str(tmp_path / "masks"), "--draw"])
    assert masks.exit_code == 0, masks.output
    with Image.open(tmp_path / "masks" / "b.png") as mask:
        assert mask.size == (40, 48) and np.asarray(mask).max() < 3
    assert (tmp_path / "masks" / "b_mask.png").is_file()
