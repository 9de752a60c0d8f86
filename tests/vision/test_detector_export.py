"""``zoo export`` of detectors: the network up to its raw head outputs, decoding and NMS in numpy (zoo.boxes),
boxes checked against eager on real photos and run where torch cannot be imported; the numpy pieces checked
against torchvision's."""
import json

import numpy as np
import pytest
import torch
from skimage import data

import zoo
from tests.bundles import run_without_torch
from vision.transforms import DetectorBatcher
from zoo.boxes import batched_nms, decode_deltas, decode_linear
from zoo.errors import BackendError, InputError


def seeded_fcos(image_size=96, score_thresh=0.05):
    """Our FCOS on EfficientNet-Lite0, random init made to give boxes: at init its box regression is ReLU(~0)
    (boxes of no size) and every score about 0.07; a regression bias of 1 gives anchor-sized boxes, larger
    class weights spread the scores."""
    from vision.upstream_dense import detector_preprocessing
    from zoo.card import ModelCard
    from zoo.hub import build

    classes = ["background", "shirt", "bag", "sneaker"]
    card = ModelCard(id="vision/fcos_efficientnet_lite0.custom", domain="vision", task="object-detection",
                     architecture="fcos_efficientnet_lite0", license="Apache-2.0", labels=classes,
                     arch_args={"num_classes": len(classes), "image_size": image_size, "score_thresh": score_thresh})
    torch.manual_seed(0)
    model = build(card)
    model.card.preprocessing, model.card.input = detector_preprocessing(model.net)
    head = model.net.head
    with torch.no_grad():
        head.regression_head.bbox_reg.bias.fill_(1.0)
        head.classification_head.cls_logits.weight.mul_(30.0)
    return model.eval()


@pytest.fixture(scope="module")
def fcos():
    return seeded_fcos()


@pytest.fixture(scope="module")
def exported(fcos, tmp_path_factory):
    from zoo.export import export

    return export(fcos, tmp_path_factory.mktemp("export") / "fcos")


def test_fcos_exports_with_its_boxes_checked_on_real_photos(exported):
    parity = json.loads((exported / "parity.json").read_text())
    assert parity["passed"] and [b["inputs"] for b in parity["batches"]] == [[1, 3, 96, 64], [2, 3, 64, 96]]
    checks = parity["predictions"]
    assert checks["passed"] and checks["max"] <= 1.0 and checks["boxes"] >= 40  # boxes were compared
    assert all(row["eager_boxes"] == row["exported_boxes"] for row in checks["photos"])
    spec = json.loads((exported / "bundle.json").read_text())
    assert spec["inputs"][0]["shape"] == [None, 3, None, None]
    assert spec["preprocessing"]["ref"] == "vision.transforms:DetectorBatcher"
    assert spec["postprocessing"] == {"kind": "detection", "decoder": "fcos", "score_thresh": 0.05,
                                      "nms_thresh": 0.6, "topk_candidates": 1000, "detections_per_img": 100}


def test_the_bundle_detects_as_eager_without_torch(fcos, exported, tmp_path):
    photos = [data.coffee()[:200, :300], data.chelsea()[50:250, 100:400], data.astronaut()[:300, :150]]
    np.save(tmp_path / "photos.npy", np.stack([np.resize(p, (200, 300, 3)) for p in photos]))
    got = run_without_torch(f"""
        import json, numpy as np
        from zoo.runtime import load_bundle
        print(json.dumps(load_bundle({str(exported)!r}).predict(list(np.load({str(tmp_path / "photos.npy")!r})))))
    """)
    for prediction, photo in zip(got, np.load(tmp_path / "photos.npy")):
        expected = fcos.predict(photo)
        assert len(prediction["boxes"]) == len(expected["boxes"]) > 0
        assert prediction["labels"] == expected["labels"]
        assert np.abs(np.asarray(prediction["boxes"]) - expected["boxes"]).max() <= 1.0
        assert np.abs(np.asarray(prediction["scores"]) - expected["scores"]).max() <= 1e-4


def test_detector_batcher_prepares_pictures_as_generalized_rcnn_transform(fcos):
    from vision.detection_export import runtime_preprocessing

    batcher = DetectorBatcher(runtime_preprocessing(fcos.net, None)["spec"])
    for photo in (data.coffee(), data.astronaut()[:97, :301]):
        images = fcos.net.transform([fcos.adapter.transform(photo)])[0]
        batch = batcher([photo])
        assert batch["input"].shape == tuple(images.tensors.shape)
        assert batch["resized"].tolist() == [list(images.image_sizes[0])]
        assert batch["sizes"].tolist() == [list(photo.shape[:2])]
        assert np.abs(batch["input"] - images.tensors.numpy()).max() < 1e-4
    with pytest.raises(InputError, match="one picture a batch"):
        batcher([data.coffee(), data.chelsea()])
    with pytest.raises(InputError, match="non-zero std"):
        DetectorBatcher({"min_size": 96, "max_size": 96, "mean": [0.5] * 3, "std": [0, 1, 1]})


def test_numpy_decoding_and_nms_are_torchvision_s():
    from torchvision.models.detection._utils import BoxCoder, BoxLinearCoder
    from torchvision.ops import batched_nms as torch_batched_nms

    rng = np.random.default_rng(0)
    anchors = np.concatenate([rng.uniform(0, 80, (200, 2)), rng.uniform(90, 200, (200, 2))], axis=1).astype(np.float32)
    codes = rng.normal(0, 1, (200, 4)).astype(np.float32)
    expected = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(torch.from_numpy(codes), torch.from_numpy(anchors))
    assert np.abs(decode_deltas(codes, anchors, (10.0, 10.0, 5.0, 5.0)) - expected.numpy()).max() < 1e-3
    codes = np.abs(codes)
    expected = BoxLinearCoder(normalize_by_size=True).decode(torch.from_numpy(codes), torch.from_numpy(anchors))
    assert np.abs(decode_linear(codes, anchors) - expected.numpy()).max() < 1e-3

    boxes, scores, labels = anchors, rng.uniform(0, 1, 200).astype(np.float32), rng.integers(0, 3, 200)
    boxes[:10] = boxes[0]  # ten copies, and two empty boxes (IoU 0/0: kept, as torchvision keeps them)
    boxes[10:12] = [5, 5, 5, 5]
    expected = torch_batched_nms(*(torch.from_numpy(x) for x in (boxes, scores, labels)), 0.5)
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == expected.tolist()


@pytest.mark.parametrize("decoder", ["fcos", "retinanet", "ssd"])
def test_numpy_detect_is_torchvision_postprocess_detections(decoder):
    """Random head outputs on two feature levels through zoo.boxes.detect and through the torchvision class's own
    postprocess_detections (+ GeneralizedRCNNTransform.postprocess's box scaling)."""
    from types import SimpleNamespace

    from torchvision.models.detection import FCOS, RetinaNet, transform
    from torchvision.models.detection._utils import BoxCoder, BoxLinearCoder
    from torchvision.models.detection.ssd import SSD

    from zoo.boxes import detect

    rng = np.random.default_rng(1)
    classes, levels = 5, [48, 12]
    centres = rng.uniform(0, 64, (sum(levels), 2))
    half = np.repeat([4.0, 16.0], levels)[:, None]
    anchors = np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)
    logits = rng.normal(-1, 2, (sum(levels), classes)).astype(np.float32)
    codes = rng.normal(0, 0.5, (sum(levels), 4)).astype(np.float32)
    centerness = rng.normal(0, 1, (sum(levels), 1)).astype(np.float32)
    if decoder == "fcos":
        codes = np.abs(codes)
    weights = (10.0, 10.0, 5.0, 5.0) if decoder == "ssd" else (1.0, 1.0, 1.0, 1.0)
    spec = {"decoder": decoder, "score_thresh": 0.3 if decoder != "ssd" else 0.2, "nms_thresh": 0.5,
            "topk_candidates": 20, "detections_per_img": 15, "box_weights": list(weights)}
    net = SimpleNamespace(score_thresh=spec["score_thresh"], nms_thresh=0.5, topk_candidates=20,
                          detections_per_img=15,
                          box_coder=BoxLinearCoder(normalize_by_size=True) if decoder == "fcos" else BoxCoder(weights))
    head = {"cls_logits": torch.from_numpy(logits), "bbox_regression": torch.from_numpy(codes),
            "bbox_ctrness": torch.from_numpy(centerness)}
    shape, original = (60, 64), (90, 100)
    if decoder == "ssd":
        expected = SSD.postprocess_detections(net, {k: v[None] for k, v in head.items()}, [torch.from_numpy(anchors)],
                                              [shape])
    else:
        split = {k: [v[None] for v in t.split(levels)] for k, t in head.items()}
        expected = {"fcos": FCOS, "retinanet": RetinaNet}[decoder].postprocess_detections(
            net, split, [list(torch.from_numpy(anchors).split(levels))], [shape])
    expected = expected[0]
    expected_boxes = transform.resize_boxes(expected["boxes"], shape, original).numpy()
    columns = [logits, codes] + ([centerness] if decoder == "fcos" else []) + [anchors, np.repeat([0.0, 1.0], levels)[:, None]]
    boxes, scores, labels = detect(np.concatenate(columns, axis=1).astype(np.float32), spec, shape, original)
    assert len(boxes) == len(expected_boxes) > 3
    assert labels.tolist() == expected["labels"].tolist()
    assert np.abs(boxes - expected_boxes).max() < 1e-3 and np.abs(scores - expected["scores"].numpy()).max() < 1e-5


@pytest.mark.slow
def test_torchvision_ssdlite_exports(tmp_path):
    from zoo.export import export

    # Random init: its features are all but zero and every class scores 1/91 everywhere, ties that no two sorts
    # break alike; above the threshold set here no box passes. The graph (anchors at a fixed 320 × 320) is what
    # this checks; the decoding is checked against torchvision's above.
    ssd = zoo.load("torchvision:ssdlite320_mobilenet_v3_large", pretrained=False, device="cpu")
    ssd.net.score_thresh = 0.5
    bundle = export(ssd, tmp_path / "ssd")
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["predictions"]["passed"]
    assert [b["inputs"] for b in parity["batches"]] == [[2, 3, 320, 320], [1, 3, 320, 320]]
    assert json.loads((bundle / "bundle.json").read_text())["inputs"][0]["shape"] == [None, 3, 320, 320]

    rcnn = zoo.load("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, device="cpu")
    with pytest.raises(BackendError, match="two-stage detector's RoI stage"):
        export(rcnn, tmp_path / "rcnn")
    assert not (tmp_path / "rcnn").exists()


@pytest.mark.parametrize("change, message", [
    (lambda b: b["postprocessing"].update(decoder="yolo"), "a decoder among"),
    (lambda b: b["postprocessing"].pop("nms_thresh"), "postprocessing spec is not valid: KeyError"),
    (lambda b: b["preprocessing"]["spec"].pop("min_size"), "preprocessing spec for vision.transforms:DetectorBatcher"),
], ids=["unknown decoder", "no nms_thresh", "no min_size"])
def test_a_bad_detection_bundle_is_an_input_error(exported, tmp_path, change, message):
    import shutil

    from tests.bundles import edit_json
    from zoo.runtime import load_bundle, seal

    bundle = shutil.copytree(exported, tmp_path / "bundle")
    edit_json(bundle / "bundle.json", change)
    seal(bundle)
    with pytest.raises(InputError, match=message):
        load_bundle(bundle).predict(data.coffee())
