"""DICOM series in, DICOM SEG out: geometry survives reading (oblique too), broken series are named,
case ids follow the rule, and a SEG round-trips onto its source slices."""

from __future__ import annotations

import locale
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.io.dicom import (DICOM_SEG_ENDING, DicomSeries, find_series, is_dicom_folder, read_seg, read_series,
                               write_seg)
from autounet.io.dicom_files import looks_like_dicom
from autounet.io.image_io import ImageReadError
from autounet.workspace import name_problem

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's example root; tests add a counter
AXIAL = np.eye(3)


def _rotation(a: float, b: float) -> np.ndarray:
    """A proper rotation (columns: the x, y, z axes' directions) about z by a, then about x by b."""
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


OBLIQUE = _rotation(0.3, 0.4)


def _uid(name: str) -> str:
    return UID_ROOT + str(int.from_bytes(name.encode(), "big") % 10**30)


def _ds(values) -> str:
    return "\\".join(f"{v:.6f}" for v in values)


def write_series(folder: Path, volume: np.ndarray, *, spacing=(0.7, 0.8, 2.5), origin=(10.0, -20.0, 30.0),
                 direction=AXIAL, patient="PAT 1", number="3", uid="series-a", offsets=None, stem=None) -> str:
    """Write ``volume`` (Z, Y, X) as one CT file per slice, named ``stem`` (else ``uid``) + a number
    so that file order is not slice order; ``offsets``: each slice's distance from the origin along
    the slice normal (mm), else index * spacing. Returns the Series Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, direction = _uid(uid), np.asarray(direction, float)
    offsets = np.arange(len(volume)) * spacing[2] if offsets is None else offsets
    before = locale.setlocale(locale.LC_ALL)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, plane in enumerate(volume):
        image = sitk.GetImageFromArray(plane.astype(np.int16))
        image.SetSpacing(spacing[:2])
        tags = {"0008|0060": "CT", "0020|000d": _uid(f"study-{patient}"), "0020|000e": series_uid,
                "0020|0052": _uid(f"frame-{uid}"), "0020|0011": number, "0010|0020": patient,
                "0010|0010": "Test^Patient", "0020|0032": _ds(np.asarray(origin) + direction[:, 2] * offsets[k]),
                "0020|0037": _ds([*direction[:, 0], *direction[:, 1]]), "0028|0030": f"{spacing[1]}\\{spacing[0]}",
                "0018|0050": str(spacing[2]), "0020|0013": str(k + 1), "0008|0016": CT_IMAGE_STORAGE,
                "0008|0018": _uid(f"{uid}-slice-{k}")}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{stem or uid}_{(7 * k) % len(volume):03d}.dcm"))
        writer.Execute(image)
    locale.setlocale(locale.LC_ALL, before)  # GDCM's writer leaves the process in the "C" locale
    return series_uid


def _volume(shape=(4, 5, 6)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) * 7 - 50).astype(np.int16)


def _one(folder: Path) -> DicomSeries:
    cases, problems = find_series(folder)
    assert len(cases) == 1 and not problems, (cases, problems)
    return cases[0]


@pytest.mark.parametrize("direction", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_series_reads_back_with_its_geometry(tmp_path: Path, direction: np.ndarray):
    volume = _volume()
    uid = write_series(tmp_path / "dicom", volume, direction=direction)
    series = _one(tmp_path / "dicom")
    assert series.series_uid == uid and series.case_id == "PAT_1" and series.folder == tmp_path / "dicom"
    image = read_series(series)
    assert np.array_equal(sitk.GetArrayFromImage(image), volume)
    np.testing.assert_allclose(image.GetSpacing(), (0.7, 0.8, 2.5), atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), (10.0, -20.0, 30.0), atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), direction, atol=1e-4)


def test_case_ids_follow_the_rule_and_are_stable(tmp_path: Path):
    root, volume = tmp_path / "dicom", _volume((2, 3, 4))
    write_series(root, volume, patient="A/B", number="3", uid="s1")
    write_series(root, volume, patient="A/B", number="7", uid="s2")
    write_series(root / "sub" / "deeper", volume, patient="", number="1", uid="s3")
    write_series(root / "other", volume, patient="C", number="1", uid="s4")
    write_series(root / "other", volume, patient="C", number="1", uid="s5")
    (root / "notes.txt").write_text("not DICOM")
    cases, problems = find_series(root)
    first, second = sorted([_uid("s4"), _uid("s5")])
    by_uid = {c.series_uid: c.case_id for c in cases}
    assert by_uid == {_uid("s1"): "A_B_3", _uid("s2"): "A_B_7", _uid("s3"): "series", first: "C_1", second: "C_1_2"}
    assert [c.case_id for c in cases] == sorted(by_uid.values())
    assert all(name_problem(c.case_id) is None for c in cases)
    assert {c.folder for c in cases if c.series_uid == _uid("s3")} == {root / "sub" / "deeper"}
    assert list(problems) == [str(root)] and "notes.txt" in problems[str(root)]
    assert find_series(root) == (cases, problems)


def test_is_dicom_folder(tmp_path: Path):
    write_series(tmp_path / "dicom" / "patient" / "study", _volume((2, 3, 4)))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "case.nii.gz").write_bytes(b"not DICOM")
    assert is_dicom_folder(tmp_path / "dicom")
    assert not is_dicom_folder(tmp_path / "other") and not is_dicom_folder(tmp_path / "absent")


def test_files_are_told_dicom_by_name_or_preamble_and_gdcm_sees_only_those_folders(tmp_path: Path, monkeypatch):
    uid = write_series(tmp_path / "export", _volume((3, 4, 5)))
    for k, path in enumerate(sorted((tmp_path / "export").iterdir())):  # a scanner's names: no ending
        path.rename(path.with_name(f"IM{k:05d}"))
    assert looks_like_dicom(tmp_path / "export" / "IM00000")  # "DICM" at byte 128
    cases, problems = find_series(tmp_path / "export")
    assert [c.series_uid for c in cases] == [uid] and not problems
    images = tmp_path / "images"
    images.mkdir()
    (images / "case_0000.nii.gz").write_bytes(b"\0" * 200)
    (images / "notes").write_bytes(b"\0" * 128 + b"DIC")  # too short, and not "DICM"
    assert not looks_like_dicom(images / "case_0000.nii.gz") and not looks_like_dicom(images / "notes")
    monkeypatch.setattr(sitk.ImageSeriesReader, "GetGDCMSeriesIDs",  # it warns on stderr when it finds none
                        lambda folder: pytest.fail(f"GDCM was asked about {folder}"))
    assert not is_dicom_folder(images)


def test_a_single_file_series_is_read_and_noted(tmp_path: Path):
    write_series(tmp_path, _volume((1, 5, 6)))
    cases, problems = find_series(tmp_path)
    assert list(problems) == [cases[0].case_id] and "single file" in problems[cases[0].case_id]
    assert read_series(cases[0]).GetSize() == (6, 5, 1)


@pytest.mark.parametrize("offsets,words", [
    ([0, 2.5, 5, 10, 12.5], ["missing", "1 slice(s)"]),
    ([0, 2.5, 5, 8.75, 11.25], ["varying slice spacing", "3.75"]),
    ([0, 2.5, 5, 7.5, 7.5], ["same position"]),
], ids=["missing", "spacing", "duplicate"])
def test_broken_stacks_are_named(tmp_path: Path, offsets, words):
    uid = write_series(tmp_path, _volume((5, 3, 4)), direction=OBLIQUE, offsets=np.array(offsets))
    series = _one(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_series(series)
    for word in [str(tmp_path), uid, *words]:
        assert word in str(e.value)


@pytest.mark.parametrize("direction,shape,words", [(OBLIQUE, (1, 4, 4), "different orientations"),
                                                    (AXIAL, (1, 4, 5), "different sizes")], ids=["tilted", "wider"])
def test_mixed_series_are_named(tmp_path: Path, direction, shape, words):
    write_series(tmp_path, _volume((3, 4, 4)), offsets=np.array([0.0, 2.5, 5.0]))
    write_series(tmp_path, _volume(shape), direction=direction, offsets=np.array([7.5]), stem="odd")  # same UID
    series = _one(tmp_path)
    assert len(series.files) == 4
    with pytest.raises(ImageReadError, match=words):
        read_series(series)


@pytest.mark.parametrize("change,words", [("shift", "gantry tilt"), ("drop", "ImagePositionPatient")])
def test_slices_off_the_stack_are_named(tmp_path: Path, change: str, words: str):
    pydicom = pytest.importorskip("pydicom")
    write_series(tmp_path, _volume((3, 2, 2)))
    series = _one(tmp_path)
    ds = pydicom.dcmread(series.files[2])
    if change == "shift":
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0] + 1, *ds.ImagePositionPatient[1:]]
    else:
        del ds.ImagePositionPatient
    ds.save_as(series.files[2])
    with pytest.raises(ImageReadError, match=words):
        read_series(series)


def test_uneven_rescale_gives_a_float_image(tmp_path: Path):
    pydicom = pytest.importorskip("pydicom")
    write_series(tmp_path, np.full((3, 2, 2), 10, np.int16))
    series = _one(tmp_path)
    ds = pydicom.dcmread(series.files[1])
    ds.RescaleSlope, ds.RescaleIntercept = "0.5", "0.25"
    ds.save_as(series.files[1])
    image = read_series(series)
    assert image.GetPixelID() == sitk.sitkFloat32
    assert sitk.GetArrayFromImage(image)[:, 0, 0].tolist() == [10.0, 5.25, 10.0]


def _mask(shape) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[1, 1:3, 1:4] = 1
    mask[2, 2:4, 2:5] = 2
    mask[2, 0, 0] = 1
    return mask


@pytest.mark.parametrize("direction", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_seg_round_trip_references_the_source(tmp_path: Path, direction: np.ndarray):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("highdicom")
    uid = write_series(tmp_path / "dicom", _volume(), direction=direction)
    series = _one(tmp_path / "dicom")
    mask, labels = _mask((4, 5, 6)), {"background": 0, "liver": 1, "tumor": 2, "cyst": 3}
    path = tmp_path / "dicom" / f"seg{DICOM_SEG_ENDING}"
    assert write_seg(mask, series, labels, path) == path
    assert np.array_equal(read_seg(path, series), mask)
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert [item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence] == [uid]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "tumor", "cyst"]
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"AUTOMATIC"}
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "autounet"
    source = {ds.SOPInstanceUID: ds.ImagePositionPatient for ds in map(pydicom.dcmread, series.files)}
    frames = seg.PerFrameFunctionalGroupsSequence
    assert len(frames) == 3  # the planes with labels, per segment; the empty ones are left out
    for frame in frames:
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient, source[ref], atol=1e-6)
    cases, problems = find_series(tmp_path / "dicom")  # the SEG beside its source is no case
    assert cases == [series] and "SEG" in problems[seg.SeriesInstanceUID]
    assert not [p.name for p in (tmp_path / "dicom").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_seg_keeps_label_values_that_are_not_consecutive(tmp_path: Path):
    pytest.importorskip("highdicom")
    write_series(tmp_path / "dicom", _volume())
    series = _one(tmp_path / "dicom")
    mask = _mask((4, 5, 6)) * 3  # values 3 and 6
    path = write_seg(mask, series, {"a": 3, "b": 6, "background": 0}, tmp_path / "out" / "case.dcm")
    assert np.array_equal(read_seg(path, series), mask)
    empty = write_seg(np.zeros_like(mask), series, {"a": 3}, tmp_path / "out" / "empty.dcm")
    assert not read_seg(empty, series).any()


def test_seg_rejects_masks_that_do_not_fit(tmp_path: Path):
    pytest.importorskip("highdicom")
    write_series(tmp_path / "dicom", _volume())
    series = _one(tmp_path / "dicom")
    with pytest.raises(ValueError, match="shape"):
        write_seg(np.zeros((3, 5, 6), np.uint8), series, {"a": 1}, tmp_path / "x.dcm")
    with pytest.raises(ValueError, match=r"\[2\]"):
        write_seg(_mask((4, 5, 6)), series, {"a": 1}, tmp_path / "x.dcm")
    other = DicomSeries("other", "1.2.3", series.files, series.folder)
    path = write_seg(_mask((4, 5, 6)), series, {"a": 1, "b": 2}, tmp_path / "x.dcm")
    with pytest.raises(ImageReadError, match="not to 1.2.3"):
        read_seg(path, other)


def test_write_seg_without_highdicom_says_how_to_install(tmp_path: Path, monkeypatch):
    write_series(tmp_path / "dicom", _volume((2, 3, 4)))
    series = _one(tmp_path / "dicom")
    monkeypatch.setitem(sys.modules, "highdicom", None)
    with pytest.raises(ImportError, match=r"autounet\[dicom\]"):
        write_seg(np.zeros((2, 3, 4), np.uint8), series, {"a": 1}, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
