"""DICOM-SEG round trip onto the source series, and de-identification of everything written."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medical.deid import deidentify, is_deidentified
from medical.io.dicom import read_series
from medical.phantom import LABELS
from medical.io.seg import read_seg, write_seg
from medical.io.volume import Volume
from tests.medical.helpers import small_phantom, write_series
from zoo.errors import InputError


@pytest.fixture(scope="module")
def series_and_mask(tmp_path_factory):
    ct, labels = small_phantom(5)
    folder = tmp_path_factory.mktemp("seg") / "series"
    write_series(ct, folder, extra={"PatientName": "Doe^Jane", "PatientID": "MRN-12345", "InstitutionName": "General"},
                 deidentify=False)
    return folder, read_series(folder), labels


def test_seg_round_trip_lands_voxel_exactly_on_the_source_series(series_and_mask, tmp_path):
    folder, series, labels = series_and_mask
    mask = series.with_array(labels.array, labels=LABELS)
    path = write_seg(mask, series, tmp_path / "seg.dcm")
    back = read_seg(path, read_series(folder))  # a fresh read: nothing shared but the files
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.same_grid(series)
    assert back.metadata["labels"] == LABELS
    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID.name == "Segmentation Storage"
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == series.metadata["series_instance_uid"]
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} <= set(series.metadata["sop_instance_uids"])
    assert seg.FrameOfReferenceUID == series.metadata["frame_of_reference_uid"]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == LABELS[1:]


def test_seg_is_deidentified_unless_asked_not_to(series_and_mask, tmp_path):
    _, series, labels = series_and_mask
    mask = series.with_array(labels.array, labels=LABELS)
    seg = pydicom.dcmread(write_seg(mask, series, tmp_path / "anon.dcm"))
    assert is_deidentified(seg)
    assert seg.PatientName == "" and seg.PatientID == "" and "InstitutionName" not in seg
    assert seg.StudyInstanceUID == series.metadata["study_instance_uid"]  # Retain UIDs Option
    kept = pydicom.dcmread(write_seg(mask, series, tmp_path / "kept.dcm", deidentify=False))
    assert kept.PatientID == "MRN-12345" and not is_deidentified(kept)


def test_seg_rejects_masks_that_do_not_fit(series_and_mask, tmp_path):
    _, series, labels = series_and_mask
    with pytest.raises(InputError, match="shape"):
        write_seg(Volume(labels.array[:-1], series.affine), series, tmp_path / "x.dcm")
    shifted = series.with_array(labels.array, labels=LABELS)
    shifted.affine = shifted.affine.copy()
    shifted.affine[0, 3] += 3.0
    with pytest.raises(InputError, match="not on the source series' grid"):
        write_seg(shifted, series, tmp_path / "x.dcm")
    with pytest.raises(InputError, match="empty"):
        write_seg(series.with_array(np.zeros(series.shape, np.uint8), labels=LABELS), series, tmp_path / "x.dcm")


def test_read_seg_refuses_another_series(series_and_mask, tmp_path):
    _, series, labels = series_and_mask
    path = write_seg(series.with_array(labels.array, labels=LABELS), series, tmp_path / "seg.dcm")
    other_ct, _ = small_phantom(6)
    write_series(other_ct, tmp_path / "other", uid_seed="other")
    with pytest.raises(InputError, match="references none of the source series' images"):
        read_seg(path, read_series(tmp_path / "other"))


def test_deidentify_removes_the_profile_subset_everywhere():
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^John", "123", "19700101"
    ds.InstitutionName, ds.OperatorsName, ds.StudyDate = "Hospital", "Tech^A", "20240102"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.add_new(0x00090010, "LO", "ACME private")
    item = Dataset()
    item.OperatorsName = "Tech^B"
    item.add_new(0x00110010, "LO", "nested private")
    ds.ProcedureCodeSequence = [item]
    request = Dataset()
    request.RequestedProcedureID = "R1"
    ds.RequestAttributesSequence = [request]
    assert not is_deidentified(ds)
    deidentify(ds)
    assert is_deidentified(ds)
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""
    assert ds.StudyDate == "19000101" and ds.StudyInstanceUID == "1.2.3.4"
    assert "InstitutionName" not in ds and "OperatorsName" not in ds and "RequestAttributesSequence" not in ds
    assert "OperatorsName" not in ds.ProcedureCodeSequence[0]
    assert not any(e.tag.is_private for e in ds.iterall())
    codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113110"}


def test_written_series_are_deidentified_by_default(tmp_path):
    ct, _ = small_phantom(7)
    write_series(ct, tmp_path / "anon", extra={"PatientName": "Doe^Jane", "InstitutionName": "General"})
    write_series(ct, tmp_path / "kept", extra={"PatientName": "Doe^Jane"}, deidentify=False)
    anon = pydicom.dcmread(next((tmp_path / "anon").iterdir()))
    assert is_deidentified(anon) and anon.PatientName == "" and "InstitutionName" not in anon
    assert pydicom.dcmread(next((tmp_path / "kept").iterdir())).PatientName == "Doe^Jane"


def test_a_seg_on_a_series_without_frame_of_reference_is_refused(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("693_J2KI.dcm", download=False)
    if path is None:
        pytest.skip("693_J2KI.dcm is not installed (pydicom-data)")
    source = read_series(path)
    assert source.metadata["frame_of_reference_uid"] == ""
    mask = source.with_array((source.array > source.array.mean()).astype(np.uint8))
    with pytest.raises(InputError, match="no FrameOfReferenceUID .*write the label map as NIfTI"):
        write_seg(mask, source, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_a_device_serial_number_becomes_a_dummy_at_the_top_and_goes_in_sequences():
    ds = Dataset()
    ds.DeviceSerialNumber = "SN-4711"  # identifies the scanner
    item = Dataset()
    item.DeviceSerialNumber = "SN-0815"
    ds.ContributingEquipmentSequence = [item]
    deidentify(ds)
    assert ds.DeviceSerialNumber == "0" and "DeviceSerialNumber" not in ds.ContributingEquipmentSequence[0]
    assert is_deidentified(ds)
    ds.DeviceSerialNumber = "SN-4711"
    assert not is_deidentified(ds)


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian dicom3tools, installed by .ci/run where apt works) is not installed")
def test_every_dicom_object_the_zoo_writes_passes_dciodvfy(series_and_mask, tmp_path):
    folder, series, labels = series_and_mask
    written = [write_seg(series.with_array(labels.array, labels=LABELS), series, tmp_path / "seg.dcm"),
               sorted(write_series(small_phantom(6)[0], tmp_path / "ct"))[0]]
    for path in written:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"
