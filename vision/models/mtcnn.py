"""MTCNN: the multi-task cascaded face detector (Zhang et al., 2016), boxes and five landmarks.

Three small networks run as a cascade over an image pyramid:

* **P-Net** (fully convolutional, 12×12 receptive field, stride 2) scores every cell of
  every pyramid level; the cells above a threshold become candidate boxes, regressed,
  thinned by NMS and made square;
* **R-Net** rescores each candidate from its 24×24 crop and regresses it again;
* **O-Net** rescores 48×48 crops, regresses the boxes and places five landmarks (eyes,
  nose, mouth corners); the last NMS keeps, of two boxes overlapping by more than 70%
  of the smaller one, the higher-scoring one.

The layer names match facenet-pytorch's, whose state dicts (converted from the
authors' Caffe models) load here under ``pnet.``, ``rnet.`` and ``onet.``. The
arithmetic of the cascade (pyramid sizes, cell-to-pixel mapping, the "+1" widths of
the regressions, the 1-based crop padding) follows that implementation so the boxes
agree with it; the code is ours.

Contract, in eval mode: ``forward(images)`` takes a list of ``[3, H, W]`` float tensors
in [0, 1] and returns one dict per image: ``boxes`` ``[N, 4]`` (x1, y1, x2, y2 in input
pixels), ``scores`` ``[N]`` (O-Net's face probability), ``labels`` ``[N]`` int64 (all 0:
"face") and ``keypoints`` ``[N, 5, 2]`` (x, y), highest score first.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PNET_CELL, PNET_STRIDE = 12, 2
NORM_MEAN, NORM_SCALE = 127.5, 0.0078125  # the authors' input normalisation, on 0-255 pixels


class PNet(nn.Module):
    """Proposal network: conv 3×3 ×3 (one 2×2 max-pool), then a face score and a box offset per cell."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)


class RNet(nn.Module):
    """Refinement network on 24×24 crops: three convs, a 128-wide dense layer, score and box offsets."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_caffe_flatten(x)))
        return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)


class ONet(nn.Module):
    """Output network on 48×48 crops: four convs, a 256-wide dense layer, score, box offsets, landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # five x, then five y, relative to the box

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    """Flatten in the converted Caffe weights' order (width, height, channel)."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class MTCNN(nn.Module):
    """The three networks and the cascade between them (see the module docstring for the contract)."""

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.factor = factor

    @torch.no_grad()
    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [self.detect_one(image) for image in images]

    def detect_one(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Faces in one ``[3, H, W]`` image in [0, 1]."""
        if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
            from zoo.errors import InputError

            got = f"a tensor of shape {list(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
            raise InputError(f"MTCNN expected [3, H, W] float images in [0, 1], got {got}")
        pixels = image.unsqueeze(0).to(self.pnet.conv1.weight.dtype) * 255.0
        boxes = self.propose(pixels)
        boxes = self.refine(pixels, boxes)
        boxes, scores, keypoints = self.output(pixels, boxes)
        return {"boxes": boxes, "scores": scores, "labels": torch.zeros(len(boxes), dtype=torch.int64,
                                                                         device=boxes.device),
                "keypoints": keypoints}

    # -- stage 1: P-Net over the pyramid ------------------------------------------
    def pyramid_scales(self, height: int, width: int) -> list[float]:
        """Scales that map the smallest wanted face to P-Net's 12-pixel cell, down by ``factor`` while
        the image's shorter side stays at least one cell."""
        scale = PNET_CELL / self.min_face_size
        shorter = min(height, width) * scale
        scales = []
        while shorter >= PNET_CELL:
            scales.append(scale)
            scale *= self.factor
            shorter *= self.factor
        return scales

    def propose(self, pixels: torch.Tensor) -> torch.Tensor:
        """Candidate boxes ``[N, 5]`` (x1, y1, x2, y2, score), regressed and squared."""
        from torchvision.ops import nms

        height, width = pixels.shape[-2:]
        found = []
        for scale in self.pyramid_scales(height, width):
            level = F.interpolate(pixels, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            offsets, probs = self.pnet(_normalise(level))
            boxes = _cells_to_boxes(offsets[0], probs[0, 1], scale, self.thresholds[0])
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        boxes = torch.cat(found) if found else pixels.new_zeros(0, 9)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        regressed = _regress(boxes[:, :4], boxes[:, 5:9], plus_one=False)
        return _square(torch.cat([regressed, boxes[:, 4:5]], dim=1))

    # -- stage 2: R-Net on 24×24 crops ----------------------------------------------
    def refine(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import nms

        boxes, crops = _crops(pixels, boxes, 24)
        if len(boxes) == 0:
            return boxes
        offsets, probs = self.rnet(_normalise(crops))
        keep = probs[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
        offsets = offsets[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, offsets = boxes[pick], offsets[pick]
        return _square(torch.cat([_regress(boxes[:, :4], offsets, plus_one=True), boxes[:, 4:5]], dim=1))

    # -- stage 3: O-Net on 48×48 crops, landmarks -------------------------------------
    def output(self, pixels: torch.Tensor, boxes: torch.Tensor):
        boxes, crops = _crops(pixels, boxes, 48)
        if len(boxes) == 0:
            return pixels.new_zeros(0, 4), pixels.new_zeros(0), pixels.new_zeros(0, 5, 2)
        offsets, landmarks, probs = self.onet(_normalise(crops))
        keep = probs[:, 1] > self.thresholds[2]
        boxes, offsets, landmarks, scores = boxes[keep, :4], offsets[keep], landmarks[keep], probs[keep, 1]
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        keypoints = torch.stack([landmarks[:, :5] * size[:, :1] + boxes[:, :1] - 1,
                                 landmarks[:, 5:] * size[:, 1:] + boxes[:, 1:2] - 1], dim=2)
        boxes = _regress(boxes, offsets, plus_one=True)
        pick = nms_min(boxes, scores, 0.7)
        return boxes[pick], scores[pick], keypoints[pick]


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - NORM_MEAN) * NORM_SCALE


def _cells_to_boxes(offsets: torch.Tensor, face_prob: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
    """P-Net cells scoring at least ``threshold`` as ``[N, 9]`` rows: the cell's box in image pixels, its
    score and its four box offsets."""
    ys, xs = torch.nonzero(face_prob >= threshold, as_tuple=True)
    cell = torch.stack([xs, ys], dim=1).to(offsets.dtype)
    top_left = ((PNET_STRIDE * cell + 1) / scale).floor()
    bottom_right = ((PNET_STRIDE * cell + PNET_CELL) / scale).floor()
    return torch.cat([top_left, bottom_right, face_prob[ys, xs, None], offsets[:, ys, xs].T], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, *, plus_one: bool) -> torch.Tensor:
    """Boxes moved by offsets given as fractions of their size (inclusive pixel size when ``plus_one``)."""
    size = boxes[:, 2:4] - boxes[:, 0:2] + (1 if plus_one else 0)
    return boxes + offsets * size.repeat(1, 2)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown about its centre to a square of its longer side (column 4, the score, kept)."""
    size = boxes[:, 2:4] - boxes[:, 0:2]
    side = size.max(dim=1, keepdim=True).values
    top_left = boxes[:, 0:2] + size * 0.5 - side * 0.5
    return torch.cat([top_left, top_left + side, boxes[:, 4:]], dim=1)


def _crops(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The boxes with a non-empty part inside the image, and those parts resized to ``size``² by area.

    The integer box is read 1-based and inclusive, as the authors' MATLAB code did: columns
    ``x1 - 1 .. x2 - 1``, clipped to the image.
    """
    height, width = pixels.shape[-2:]
    corners = boxes[:, :4].trunc().long()
    x1, y1 = corners[:, 0].clamp(min=1), corners[:, 1].clamp(min=1)
    x2, y2 = corners[:, 2].clamp(max=width), corners[:, 3].clamp(max=height)
    valid = (x2 > x1 - 1) & (y2 > y1 - 1)
    crops = [F.interpolate(pixels[:, :, y1[k] - 1:y2[k], x1[k] - 1:x2[k]], size=(size, size), mode="area")
             for k in torch.nonzero(valid).flatten().tolist()]
    if not crops:
        return boxes[:0], pixels.new_zeros(0, 3, size, size)
    return boxes[valid], torch.cat(crops)


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS whose overlap is the intersection over the *smaller* box (inclusive pixel areas):
    nested boxes suppress each other. Indices kept, highest score first."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:4], boxes[rest, 2:4])
        inter = (bottom_right - top_left + 1).clamp(min=0).prod(dim=1)
        order = rest[inter / torch.minimum(area[best], area[rest]) <= threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.int64, device=boxes.device)


def _prefixed(prefix: str, state: dict) -> dict:
    return {prefix + key: value for key, value in state.items()}


def remap_pnet(state: dict) -> dict:
    """facenet-pytorch's ``pnet.pt`` keyed for :class:`MTCNN`."""
    return _prefixed("pnet.", state)


def remap_rnet(state: dict) -> dict:
    """facenet-pytorch's ``rnet.pt`` keyed for :class:`MTCNN`."""
    return _prefixed("rnet.", state)


def remap_onet(state: dict) -> dict:
    """facenet-pytorch's ``onet.pt`` keyed for :class:`MTCNN`."""
    return _prefixed("onet.", state)


def mtcnn(**kwargs) -> MTCNN:
    """The registered builder (``vision/mtcnn.face``)."""
    return MTCNN(**kwargs)


def load_pretrained(model_id: str = "vision/mtcnn.face") -> MTCNN:
    """The registered MTCNN network with its pinned weights from the store (the bare network, without
    ``zoo.load``'s task adapter: what the parity benchmark compares)."""
    from backends.state import load_state
    from zoo import cache
    from zoo.registry import get_registry

    spec = get_registry().model(model_id)
    net = mtcnn(**spec.arch_args)
    state = {}
    for path in cache.fetch_all(spec.weights, model_id=model_id).values():
        state.update(load_state(path))
    net.load_state_dict(state)  # strict: every stage's every tensor
    return net.eval()
