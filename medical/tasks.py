"""Task adapters: how medical models take volumes and images in and give label maps and labels out."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from medical.io.volume import Volume, resample, resample_to_grid, to_canonical
from zoo.card import ModelCard
from zoo.errors import InputError
from zoo.model import TaskAdapter
from zoo.metrics import top_k_predictions

SEGMENTATION_OUTPUTS = (".dcm", ".nii", ".nii.gz", ".npy")


def model_grid_image(volume: Volume, preprocessing: dict[str, Any]) -> Volume:
    """A volume as the network sees it: canonical orientation, the card's spacing, normalised float32."""
    from medical.transforms import normalize

    moved = resample(to_canonical(volume), preprocessing["spacing"], order=1)
    return Volume(normalize(moved.array, preprocessing).astype(np.float32), moved.affine, moved.metadata)


def model_grid_labels(labels: Volume, preprocessing: dict[str, Any]) -> Volume:
    """A label map on the grid :func:`model_grid_image` gives its image (nearest neighbour)."""
    return resample(to_canonical(labels), preprocessing["spacing"], order=0)


class Segmentation3D(TaskAdapter):
    """Volumes in (a :class:`Volume`, or a DICOM series folder / NIfTI path through ``read``); label-map Volumes out.

    ``predict`` reorients and resamples each volume to the card's spacing, runs the
    network by sliding window (overlap and Gaussian blending from the card's
    ``preprocessing``), resamples the class probabilities back onto the input's
    own grid and takes the arg-max there: the label map lies voxel for voxel on
    the input, and ``write`` can save it as a DICOM-SEG referencing its series.
    """

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        self.preprocessing = card.preprocessing

    @property
    def transform(self):
        return self.to_tensor

    def to_tensor(self, volume: Volume) -> torch.Tensor:
        """``[1, D, H, W]`` network input on the model grid."""
        return torch.from_numpy(model_grid_image(_as_volume(volume), self.preprocessing).array)[None]

    def read(self, path: str | os.PathLike) -> Volume:
        """A DICOM series folder or file, or a NIfTI file."""
        from medical.io import read_volume

        return read_volume(path)

    def predict(self, module: torch.nn.Module, raw_inputs: Sequence[Any], *, device: torch.device,
                overlap: float | None = None, batch_size: int = 4) -> list[Volume]:
        return [self.segment(module, _as_volume(volume), device=device, overlap=overlap, batch_size=batch_size)
                for volume in raw_inputs]

    def segment(self, module: torch.nn.Module, volume: Volume, *, device: torch.device, overlap: float | None = None,
                batch_size: int = 4) -> Volume:
        """One volume → its label map on the same grid (uint8, ``metadata["labels"]`` names the values);
        the module runs on ``device``."""
        from medical.inference import sliding_window

        prepared = model_grid_image(volume, self.preprocessing)
        probabilities = sliding_window(module, torch.from_numpy(prepared.array)[None], self.preprocessing["patch_size"],
                                       overlap=self.preprocessing.get("overlap", 0.5) if overlap is None else overlap,
                                       batch_size=batch_size, pad_value=-1.0, device=device).cpu().numpy()  # -1: air, normalised
        best = np.full(volume.shape, -1.0, dtype=np.float32)
        labels = np.zeros(volume.shape, dtype=np.uint8)
        for index, channel in enumerate(probabilities):  # one class at a time: memory stays at two source-grid arrays
            on_source = resample_to_grid(Volume(channel, prepared.affine), volume.shape, volume.affine, order=1,
                                         fill=1.0 if index == 0 else 0.0).array
            better = on_source > best
            best[better], labels[better] = on_source[better], index
        return volume.with_array(labels, labels=list(self.card.labels or []), model=self.card.id)

    def postprocess(self, outputs: torch.Tensor) -> list[np.ndarray]:
        """Logits ``[N, classes, D, H, W]`` → label arrays on the model grid."""
        return list(outputs.argmax(dim=1).to(torch.uint8).cpu().numpy())

    output_suffixes = SEGMENTATION_OUTPUTS

    def describe(self, prediction: Volume, top_k: int = 1) -> str:
        """The label map's shape and voxel spacing, and how many voxels each label got."""
        values, counts = np.unique(prediction.array, return_counts=True)
        names = prediction.metadata.get("labels") or self.card.labels or []
        per_label = ", ".join(f"{names[v] if v < len(names) else v} {n:,}" for v, n in zip(values.tolist(), counts))
        spacing = "×".join(f"{s:g}" for s in prediction.spacing)
        return f"label map {'×'.join(map(str, prediction.array.shape))} at {spacing} mm; voxels per label: {per_label}"

    def write(self, prediction: Volume, path: str | os.PathLike, *, source: str | os.PathLike | None = None,
              deidentify: bool = True) -> Path:
        """A DICOM-SEG (``.dcm``, referencing the ``source`` series), NIfTI (``.nii[.gz]``) or ``.npy`` label map."""
        path = Path(path)
        if path.suffix == ".dcm":
            from medical.io.seg import write_seg

            # A label map predicted on a series carries the series' file list; else read the source series.
            if prediction.metadata.get("source") == "dicom":
                reference = prediction
            elif source is not None:
                reference = self.read(source)
            else:
                raise InputError("writing a DICOM-SEG needs the DICOM series it segments: pass source=")
            return write_seg(prediction, reference, path, deidentify=deidentify)
        if path.name.endswith((".nii", ".nii.gz")):
            from medical.io.nifti import write_nifti

            return write_nifti(prediction, path)
        if path.suffix == ".npy":
            np.save(path, prediction.array)
            return path
        raise InputError(f"expected an output file ending in one of {SEGMENTATION_OUTPUTS}, got {path.name}")


def _as_volume(item: Any) -> Volume:
    if isinstance(item, Volume):
        return item
    raise InputError(f"expected a medical.Volume (read one with medical.read_volume), got {type(item).__name__}")


class ImageClassification2D(TaskAdapter):
    """Grey 2-D images in (arrays, or DICOM / ``.npy`` files through ``read``); ``{"label", "index", "score", "top_k"}`` out."""

    top_k = 5

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        self.preprocessing = card.preprocessing

    @property
    def transform(self):
        return self.to_tensor

    def to_tensor(self, image: Any) -> torch.Tensor:
        """A 2-D array → ``[1, size, size]``: scaled to [0, 1] (percentiles or the card's range), resized, normalised."""
        import torch.nn.functional as F

        from medical.transforms import percentile_scale, window

        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 3 and array.shape[-1] in (1, 3):
            array = array.mean(axis=-1)
        if array.ndim != 2:
            raise InputError(f"expected a 2-D grey image, got an array of shape {array.shape}")
        value_range = self.preprocessing.get("array_range")
        if value_range:
            low, high = value_range
            scaled = window(array, width=high - low, level=(high + low) / 2)
        else:
            scaled = percentile_scale(array)
        size = self.preprocessing.get("size", [28, 28])
        tensor = torch.from_numpy(scaled)[None, None]
        if list(tensor.shape[-2:]) != list(size):
            tensor = F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        mean, std = self.preprocessing.get("mean", 0.5), self.preprocessing.get("std", 0.5)
        return ((tensor[0] - mean) / std).float()

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """A DICOM image file (first frame of a multi-frame one) or a ``.npy`` array."""
        from medical.io.dicom_file import read_image

        if Path(path).suffix == ".npy":
            return super().read(path)
        image = read_image(path)
        return image[0] if image.ndim == 3 else image

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        return top_k_predictions(outputs, self.card.labels, self.top_k)
