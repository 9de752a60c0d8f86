"""MTCNN parity with facenet-pytorch's own ``MTCNN.detect``, and face/non-face AUC on LFW.

Targets (issue 16): on >= 5 real photos the same number of faces, boxes within 1 px;
``skimage.data.lfw_subset()`` face/non-face AUC >= 0.98 (score: the highest face
probability MTCNN gives the image, 0 when it finds none).

facenet-pytorch pins torch<2.3, so it goes into a throw-away venv that sees this
environment's torch (``--system-site-packages``, ``pip install --no-deps``); it runs
there on the same pixels and writes its detections as JSON. Ours load through the
store: the three state dicts out of the facenet-pytorch wheel (``ZOO_WHEELHOUSE`` or
PyPI), converted once to safetensors.

    python -m benchmarks.mtcnn_parity [--venv DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.load_overhead import write, zoo_env

REFERENCE = "facenet-pytorch==2.6.0"
REFERENCE_SCRIPT = """
import json, sys
import numpy as np
from PIL import Image
from facenet_pytorch import MTCNN
detector = MTCNN(keep_all=True)
out = {}
for path in sys.argv[2:]:
    boxes, probs, points = detector.detect(Image.fromarray(np.load(path)), landmarks=True)
    out[path] = [] if boxes is None else [
        {"box": b.tolist(), "score": float(p), "points": k.tolist()} for b, p, k in zip(boxes, probs, points)]
json.dump(out, open(sys.argv[1], "w"))
"""


def photos() -> dict[str, np.ndarray]:
    """Real photographs as H×W×3 uint8: faces at several sizes, and photos with none."""
    from PIL import Image
    from skimage import data

    def rgb(image: np.ndarray) -> np.ndarray:
        return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]

    def upscaled(image: np.ndarray, factor: int) -> np.ndarray:
        pil = Image.fromarray(rgb(image))
        return np.asarray(pil.resize((pil.width * factor, pil.height * factor), Image.BICUBIC))

    faces = (data.lfw_subset()[:100] * 255).round().astype(np.uint8)
    grid = np.block([[faces[4 * r + c] for c in range(4)] for r in range(3)])  # twelve faces of 25×25
    astronaut = data.astronaut()
    return {
        "astronaut": astronaut,
        "astronaut_half": np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.BILINEAR)),
        "astronaut_mirrored": np.ascontiguousarray(astronaut[:, ::-1]),
        "camera": rgb(data.camera()),
        "lfw_face_0_x4": upscaled(faces[0], 4),
        "lfw_face_7_x4": upscaled(faces[7], 4),
        "lfw_grid_x4": upscaled(grid, 4),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
    }


def ours():
    """Our MTCNN with the pinned facenet-pytorch weights, through the store."""
    import torch

    from vision.models.mtcnn import load_pretrained

    return load_pretrained().eval(), torch


def detect(net, torch, image: np.ndarray) -> dict:
    tensor = torch.from_numpy(np.ascontiguousarray(image).copy()).permute(2, 0, 1).float() / 255
    return {key: value.numpy() for key, value in net([tensor])[0].items()}


def reference(images: dict[str, np.ndarray], venv: Path, scratch: Path) -> dict[str, list[dict]]:
    """facenet-pytorch's detections, run in its throw-away venv."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", REFERENCE], check=True)
    paths = []
    for name, image in images.items():
        paths.append(str(scratch / f"{name}.npy"))
        np.save(paths[-1], image)
    out = scratch / "reference.json"
    subprocess.run([str(python), "-c", REFERENCE_SCRIPT, str(out), *paths], check=True)
    found = json.loads(out.read_text())
    return {name: found[path] for name, path in zip(images, paths)}


def compare(mine: dict, theirs: list[dict]) -> dict:
    """Count agreement and, matching each reference face to our nearest box, the largest differences."""
    row = {"faces_ours": len(mine["boxes"]), "faces_reference": len(theirs)}
    if theirs and len(mine["boxes"]):
        ref_boxes = np.array([face["box"] for face in theirs])
        ref_points = np.array([face["points"] for face in theirs])
        nearest = [int(np.abs(mine["boxes"] - box).max(axis=1).argmin()) for box in ref_boxes]
        row["max_box_diff_px"] = float(np.abs(mine["boxes"][nearest] - ref_boxes).max())
        row["max_landmark_diff_px"] = float(np.abs(mine["keypoints"][nearest] - ref_points).max())
        row["max_score_diff"] = float(np.abs(mine["scores"][nearest] - [f["score"] for f in theirs]).max())
    return row


def lfw_auc(net, torch) -> float:
    """Face/non-face AUC on lfw_subset (100 faces, then 100 non-faces; 25×25 grey, upscaled ×4), as the
    vision suite's ``mtcnn.face@lfw_subset`` task measures it."""
    from vision.bench_dense import face_auc, lfw_pictures

    pictures, is_face = lfw_pictures()
    scores = []
    for picture in pictures:
        found = detect(net, torch, picture)
        scores.append(float(found["scores"].max()) if len(found["scores"]) else 0.0)
    return face_auc(is_face, np.array(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="the reference's venv (made there if missing; default: temporary)")
    args = parser.parse_args()
    images = photos()
    net, torch = ours()
    with tempfile.TemporaryDirectory(prefix="mtcnn-parity-") as scratch:
        theirs = reference(images, args.venv or Path(scratch) / "venv", Path(scratch))
    rows = {name: compare(detect(net, torch, image), theirs[name]) for name, image in images.items()}
    for name, row in rows.items():
        print(f"{name:20s} {row}")
    with_faces = [row for row in rows.values() if "max_box_diff_px" in row]
    result = {
        "benchmark": "mtcnn_parity",
        "reference": REFERENCE,
        "photos": rows,
        "same_count_everywhere": all(r["faces_ours"] == r["faces_reference"] for r in rows.values()),
        "max_box_diff_px": max(r["max_box_diff_px"] for r in with_faces),
        "max_landmark_diff_px": max(r["max_landmark_diff_px"] for r in with_faces),
        "lfw_subset_auc": lfw_auc(net, torch),
        "env": zoo_env(),
    }
    write(result)


if __name__ == "__main__":
    main()
