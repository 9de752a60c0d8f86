"""DICOM-SEG: write a label map as a Segmentation object referencing its source series, and read one back.

Writing goes through highdicom: one segment per foreground label, one frame per
source slice (empty frames left out), each frame referencing the SOPInstanceUID
of the slice it covers, so a viewer lays it on that series. Reading maps the
frames back onto the source series through those references, voxel for voxel.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from medical.io.volume import Volume
from zoo.errors import InputError

SOFTWARE = "domain-zoo medical"
# SNOMED CT codes for the segment property categories and types the phantom labels use.
CATEGORY_ORGAN = ("123037004", "Anatomical Structure")
CATEGORY_MORPHOLOGY = ("49755003", "Morphologically Abnormal Structure")
SEGMENT_TYPES = {
    "liver": (CATEGORY_ORGAN, ("10200004", "Liver")),
    "kidney": (CATEGORY_ORGAN, ("64033007", "Kidney")),
    "lesion": (CATEGORY_MORPHOLOGY, ("52988006", "Lesion")),
    "spleen": (CATEGORY_ORGAN, ("78961009", "Spleen")),
}
OTHER_TYPE = (("91723000", "Anatomical Structure"), ("85756007", "Tissue"))


def source_datasets(volume: Volume) -> list:
    """The headers of the files a series Volume was read from, in its slice order."""
    import pydicom

    files = volume.metadata.get("files")
    if not files or volume.metadata.get("source") != "dicom":
        raise InputError("expected a Volume read from a DICOM series (medical.read_series), whose metadata lists "
                         "its files; a SEG must reference the images it segments")
    if any(frame is not None for frame in volume.metadata.get("frames", [])):
        raise InputError("writing a SEG on an enhanced multi-frame source is not supported yet; its frames would "
                         "need frame-level references")
    datasets = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            for _ in ds.iterall():  # convert every value now, so a damaged one is named here, not deep in highdicom
                pass
        except Exception as exc:  # pydicom raises many types for a damaged value or a file changed since
            raise InputError(f"{Path(path).name}: could not read the source slice's header for the SEG "
                             f"({type(exc).__name__}: {exc})") from None
        datasets.append(ds)
    without = [Path(path).name for path, ds in zip(files, datasets) if not str(ds.get("FrameOfReferenceUID", "") or "")]
    if without:
        # A SEG places its segments in its source images' frame of reference; inventing one would misplace them.
        raise InputError(f"the source series has no FrameOfReferenceUID ({', '.join(without[:3])}{', ...' if len(without) > 3 else ''}): a DICOM-SEG "
                         "must share its images' frame of reference, so none can be written for it; write the label "
                         "map as NIfTI (.nii.gz) or .npy instead")
    return datasets


def write_seg(labels: Volume, source: Volume, path: str | os.PathLike, *, label_names: Sequence[str] | None = None,
              series_description: str = "Domain Zoo segmentation", deidentify: bool = True) -> Path:
    """Write the label map ``labels`` (on ``source``'s grid) as a DICOM-SEG file at ``path``.

    ``source`` is the Volume read from the series (its metadata lists the files).
    ``label_names`` names each label value, background first (default: the label
    map's ``metadata["labels"]``). De-identified unless ``deidentify=False``.
    """
    from medical.deid import deidentify as deidentify_dataset

    if labels.shape != source.shape:
        raise InputError(f"expected a label map of the source series' shape {source.shape}, got {labels.shape}")
    if not labels.same_grid(source):
        raise InputError("the label map is not on the source series' grid (its affine differs); resample it onto "
                         "the series first (medical.io.volume.resample_to_grid)")
    names = list(label_names or labels.metadata.get("labels") or [])
    values = np.asarray(labels.array)
    count = int(values.max()) if values.size else 0
    if not names:
        names = ["background"] + [f"label {i}" for i in range(1, count + 1)]
    if count >= len(names):
        raise InputError(f"expected label values below {len(names)} (names {names}), found {count}")
    if count == 0:
        raise InputError("the label map is empty: a DICOM-SEG needs at least one labelled voxel")
    descriptions = [_segment(number, names[number]) for number in range(1, len(names))]
    sources = source_datasets(source)
    try:
        seg = _segmentation(sources, values, len(names), descriptions, labels.metadata.get("model", "medical"),
                            series_description)
    except Exception as exc:  # highdicom checks the source headers' values with many exception types
        raise InputError(f"highdicom cannot build a SEG on this source series: {type(exc).__name__}: {exc}") from None
    if deidentify:
        deidentify_dataset(seg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def _segmentation(sources: list, values: np.ndarray, classes: int, descriptions: list, model: str,
                  series_description: str):
    """The highdicom Segmentation object: one binary segment per label, frames referencing ``sources``."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=values.astype(np.uint8 if classes <= 256 else np.uint16),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=9001,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Domain Zoo",
        manufacturer_model_name=model,
        software_versions=SOFTWARE,
        device_serial_number="0",
        series_description=series_description,
    )


def _segment(number: int, name: str):
    import highdicom as hd
    from pydicom.sr.coding import Code

    category, kind = SEGMENT_TYPES.get(name.lower(), OTHER_TYPE)
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=Code(category[0], "SCT", category[1]),
        segmented_property_type=Code(kind[0], "SCT", kind[1]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="domain-zoo", version="1", family=Code("123109", "DCM", "Artificial Intelligence")),
    )


def read_seg(path: str | os.PathLike, source: Volume) -> Volume:
    """A DICOM-SEG as a label map on ``source``'s grid (the series it references), segment numbers as values.

    Frames are placed through their references to the source SOPInstanceUIDs;
    slices the SEG leaves out are empty. Raises InputError if the SEG references
    none of the series' images or another frame of reference.
    """
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # pydicom/highdicom raise many types for a file that is not a SEG
        raise InputError(f"expected a DICOM-SEG file at {path}: {type(exc).__name__}: {exc}") from None
    uids = list(source.metadata.get("sop_instance_uids") or [])
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not uids or not referenced & set(uids):
        raise InputError(f"{Path(path).name} references none of the source series' images; read it with the series "
                         "it was made from")
    frame_of_reference = source.metadata.get("frame_of_reference_uid")
    if frame_of_reference and str(seg.FrameOfReferenceUID) != frame_of_reference:
        raise InputError(f"{Path(path).name} is in frame of reference {seg.FrameOfReferenceUID}, the series in {frame_of_reference}")
    present = [uid for uid in uids if uid in referenced]
    pixels = seg.get_pixels_by_source_instance(present, combine_segments=True, skip_overlap_checks=True,
                                               ignore_spatial_locations=True)
    array = np.zeros(source.shape, dtype=np.uint8 if len(seg.SegmentSequence) < 256 else np.uint16)
    index = {uid: k for k, uid in enumerate(uids)}
    for uid, frame in zip(present, pixels):
        array[index[uid]] = frame
    names = ["background"] + [str(item.SegmentLabel) for item in seg.SegmentSequence]
    return source.with_array(array, labels=names, source="dicom-seg", path=str(path))
