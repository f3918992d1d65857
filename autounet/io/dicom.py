"""DICOM input and DICOM SEG output: find the series in a folder, read one as a 3D image, write
and read back a segmentation of it as a DICOM SEG.

Finding and reading series uses SimpleITK (GDCM) only, asked about the folders that hold a file
:func:`~autounet.io.dicom_files.looks_like_dicom` accepts. Each series (one Series Instance UID,
anywhere under the folder) becomes one case. Its case id is the PatientID (0010,0020) with every
character other than letters, digits, '.', '-' and '_' turned into '_' (a leading '.' too; an empty one becomes
``series``), followed by ``_`` + the SeriesNumber (0020,0011; the last 8 characters of the Series
Instance UID where it has none) when that patient has more than one series under the folder.
Ids that still collide get ``_2``, ``_3``, ... in Series Instance UID order (as text), so a folder
always gives the same ids, and every id passes :func:`autounet.workspace.name_problem`.

Before a series is read, every slice's header (no pixel data) is checked: one size and one
orientation for all slices, positions along the slice normal without duplicates, gaps (missing
slices) or uneven spacing, and no shift within the slice plane (gantry tilt); otherwise
ImageReadError says what is wrong. SimpleITK's arrays are (z, y, x), ``files[z]`` being slice z.

Writing a SEG needs highdicom (``pip install 'autounet[dicom]'``), imported only there. A SEG
has one BINARY segment per label value > 0, numbered 1, 2, ... in value order and named after
the label; a label absent from the mask is kept as an empty segment, so every SEG of a dataset
lists the same segments. Each segment's SegmentDescription records its label value, which
:func:`read_seg` maps back to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from autounet.version import __version__
from autounet.io.atomic import atomic_path, fsync_file
from autounet.io.dicom_files import series_folders
from autounet.io.image_io import ImageReadError
from autounet.workspace import name_problem

DICOM_SEG_ENDING = ".dcm"
INSTALL_HINT = "writing and reading DICOM SEG needs highdicom: pip install 'autounet[dicom]'"
NOT_IMAGES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"}  # Modality (0008,0060)
SEG_SERIES_NUMBER = 1000
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._-]")
_VALUE_NOTE = re.compile(r"autounet label value (\d+)")
_MAX_BASE = 150  # characters of a case id before its suffixes (ids may have 200)
_MM = 1e-3  # positions closer than this (mm) are equal; gaps may also differ by 1%


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series: a case. ``files`` are in slice order (GDCM's)."""

    case_id: str
    series_uid: str
    files: tuple[Path, ...]
    folder: Path


def is_dicom_folder(folder: Path) -> bool:
    """Whether GDCM finds at least one DICOM series in ``folder`` or any folder below it."""
    return Path(folder).is_dir() and any(uids for _, uids in series_folders(Path(folder)))


def _header(path: Path) -> sitk.ImageFileReader:
    """A reader holding ``path``'s header (no pixel data); RuntimeError where it cannot be read."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def _tag(reader: sitk.ImageFileReader, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def _clean(text: str) -> str:
    """``text`` with the characters a case id may not hold turned into '_'."""
    out = _NOT_ALLOWED.sub("_", text)[:_MAX_BASE]
    return "_" + out[1:] if out.startswith(".") else out


def _case_ids(found: list[tuple[str, str, str]]) -> dict[str, str]:
    """Case id by series UID, from (series UID, PatientID, SeriesNumber) of every series."""
    per_patient: dict[str, int] = {}
    for _, patient, _ in found:
        per_patient[patient] = per_patient.get(patient, 0) + 1
    base = {}
    for uid, patient, number in found:
        base[uid] = _clean(patient) or "series"
        if per_patient[patient] > 1:
            base[uid] += "_" + _clean(number or uid[-8:])
    ids: dict[str, str] = {}
    taken = set(base.values())
    for uid in sorted(base):
        case_id, n = base[uid], 2
        if case_id in ids.values():
            while f"{case_id}_{n}" in taken:
                n += 1
            case_id = f"{case_id}_{n}"
            taken.add(case_id)
        ids[uid] = case_id
    return ids


def _gather(folder: Path) -> tuple[dict[str, tuple[Path, tuple[Path, ...]]], dict[str, str]]:
    """GDCM's series under ``folder`` by UID, as (folder, files), and problems."""
    places: dict[str, list[tuple[Path, tuple[Path, ...]]]] = {}
    problems = {}
    for here, uids in series_folders(folder):
        listed: set[str] = set()
        for uid in uids:
            files = tuple(Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(here), uid))
            places.setdefault(uid, []).append((here, files))
            listed.update(f.name for f in files)
        skipped = sorted(f.name for f in here.iterdir() if f.is_file() and not f.name.startswith(".")
                         and f.name not in listed)
        if skipped:
            problems[str(here)] = (f"{here}: {len(skipped)} file(s) are not DICOM images GDCM can read (or have "
                                   "neither a .dcm name nor DICOM's 'DICM' preamble) and were skipped "
                                   f"({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''})")
    for uid, where in list(places.items()):
        if len(where) > 1:
            folders = ", ".join(str(w) for w, _ in where)
            problems[uid] = f"series {uid} is split over folders ({folders}); it was left out: move its files into one"
            del places[uid]
    return {uid: where[0] for uid, where in places.items()}, problems


def find_series(folder: Path) -> tuple[list[DicomSeries], dict[str, str]]:
    """Every DICOM image series under ``folder`` (recursively), one case each, sorted by case id,
    and problems {key: message}: keyed by series UID for a series left out (split over folders,
    unreadable, not an image such as a SEG or RTSTRUCT), by folder for files that were skipped,
    and by case id for a usable series worth a note (a single file: read as a one-slice image)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder; pass the folder that holds the DICOM files")
    places, problems = _gather(folder)
    found, notes = [], {}
    for uid, (here, files) in sorted(places.items()):
        try:
            reader = _header(files[0])
        except RuntimeError as e:
            problems[uid] = f"{here}: series {uid} was left out: cannot read {files[0].name} ({_first_line(e)})"
            continue
        modality = _tag(reader, "0008|0060").upper()
        if modality in NOT_IMAGES:
            problems[uid] = f"{here}: series {uid} was left out: a {modality}, not an image series"
            continue
        found.append((uid, _tag(reader, "0010|0020"), _tag(reader, "0020|0011")))
        if len(files) == 1 and reader.GetSize()[2:] in ((), (1,)):
            notes[uid] = f"{here}: series {uid} has a single file ({files[0].name}); it is read as a one-slice image"
    ids = _case_ids(found)
    cases = sorted((DicomSeries(ids[uid], uid, places[uid][1], places[uid][0]) for uid, _, _ in found),
                   key=lambda s: s.case_id)
    for uid, note in notes.items():
        problems[ids[uid]] = note
    assert all(name_problem(s.case_id, "case id") is None for s in cases), [s.case_id for s in cases]
    return cases, problems


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _floats(reader: sitk.ImageFileReader, key: str, n: int) -> np.ndarray | None:
    """A multi-valued numeric tag as ``n`` floats, or None where it is absent or malformed."""
    try:
        values = np.array([float(v) for v in _tag(reader, key).split("\\")])
    except ValueError:
        return None
    return values if values.shape == (n,) and np.isfinite(values).all() else None


@dataclass(frozen=True)
class _Slice:
    """What the checks need from one file's header."""

    name: str
    size: tuple[int, ...]
    position: np.ndarray | None
    orientation: np.ndarray | None
    rescale: tuple[str, str]


def _slices(series: DicomSeries) -> list[_Slice]:
    out = []
    for path in series.files:
        try:
            reader = _header(path)
        except RuntimeError as e:
            raise ImageReadError(f"{series.folder}: series {series.series_uid}: cannot read {path.name} "
                                 f"({_first_line(e)}); replace or remove the file") from e
        out.append(_Slice(path.name, reader.GetSize(), _floats(reader, "0020|0032", 3),
                          _floats(reader, "0020|0037", 6), (_tag(reader, "0028|1053"), _tag(reader, "0028|1052"))))
    return out


def _check_slices(slices: list[_Slice], where: str) -> None:
    """Raise ImageReadError where the slices do not form one regular stack."""
    if len(slices) < 2:
        return
    sizes = sorted({s.size for s in slices})
    if len(sizes) > 1:
        raise ImageReadError(f"{where}: slices of different sizes {sizes} (a mixed series, or multi-frame files); "
                             "keep one acquisition per series")
    lacking = [s.name for s in slices if s.position is None or s.orientation is None]
    if lacking:
        raise ImageReadError(f"{where}: {len(lacking)} slice(s) ({', '.join(lacking[:3])}) have no valid "
                             "ImagePositionPatient (0020,0032) or ImageOrientationPatient (0020,0037), so the "
                             "slices cannot be placed; convert this series with a tool that knows its geometry")
    first = slices[0].orientation
    odd = [s.name for s in slices if np.abs(s.orientation - first).max() > 1e-4]
    if odd:
        raise ImageReadError(f"{where}: slices with different orientations ({', '.join(odd[:3])} differ from "
                             f"{slices[0].name}): a mixed series (a localizer?); keep one acquisition per series")
    _check_positions(slices, np.cross(first[:3], first[3:]), where)


def _usual_step(gaps: np.ndarray) -> float:
    """The gap most gaps agree with (within tolerance), the smallest such where several do."""
    near = np.abs(gaps[:, None] - gaps[None, :]) <= np.maximum(_MM, 0.01 * gaps[:, None])
    counts = near.sum(axis=1)
    return float(gaps[counts == counts.max()].min())


def _check_positions(slices: list[_Slice], normal: np.ndarray, where: str) -> None:
    """Raise ImageReadError for repeated positions, missing slices, uneven spacing or tilt."""
    positions = np.array([s.position for s in slices])
    moves = np.diff(positions @ normal)
    same = np.flatnonzero(np.abs(moves) < _MM)
    if same.size:
        i = int(same[0])
        raise ImageReadError(f"{where}: two slices at the same position {positions[i].round(3).tolist()} "
                             f"({slices[i].name}, {slices[i + 1].name}): duplicate files or two series with "
                             "one UID; remove the duplicates")
    if not ((moves > 0).all() or (moves < 0).all()):
        raise ImageReadError(f"{where}: the slices are not in position order; check the series' positions")
    shift = np.linalg.norm(np.diff(positions, axis=0) - moves[:, None] * normal, axis=1)
    gaps = np.abs(moves)
    step = _usual_step(gaps)
    tolerance = max(_MM, 0.01 * step)
    if shift.max() > tolerance:
        raise ImageReadError(f"{where}: slices are shifted within the slice plane by up to {shift.max():.4g} mm "
                             "(gantry tilt?); resample the series to a regular grid first")
    k = np.round(gaps / step)
    missing = np.flatnonzero((k >= 2) & (np.abs(gaps - k * step) <= tolerance * k))
    uneven = np.flatnonzero(np.abs(gaps - step) > tolerance)
    uneven = uneven[~np.isin(uneven, missing)]
    problems = [f"varying slice spacing: gap of {gaps[i]:.4g} mm after {slices[i].name} where the usual step "
                f"is {step:.4g} mm" for i in uneven[:3]]
    problems += [f"missing slices: gap of {gaps[i]:.4g} mm after {slices[i].name}, {int(k[i]) - 1} slice(s) "
                 f"of {step:.4g} mm missing" for i in missing[:3]]
    if problems:
        fixes = ["add the missing files"] * bool(missing.size) + ["resample it to even spacing"] * bool(uneven.size)
        raise ImageReadError(f"{where}: {'; '.join(problems)}; {' or '.join(fixes)}")


def read_series(series: DicomSeries) -> sitk.Image:
    """The series as one 3D SimpleITK image (slice z from ``series.files[z]``), after checks that
    raise ImageReadError naming the folder and series UID (mixed sizes or orientations, repeated
    or missing slices, varying spacing). SimpleITK applies each slice's rescale slope and
    intercept; where these differ between slices, the image is float32."""
    where = f"{series.folder}: series {series.series_uid}"
    if not series.files:
        raise ImageReadError(f"{where}: no files; run find_series on the folder again")
    slices = _slices(series)
    _check_slices(slices, where)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in series.files])
    if len({s.rescale for s in slices}) > 1:
        reader.SetOutputPixelType(sitk.sitkFloat32)  # the first slice's integer type would truncate the others
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise ImageReadError(f"{where}: SimpleITK cannot read the series ({_first_line(e)})") from e


def _highdicom() -> tuple[Any, Any, Any]:
    """highdicom, pydicom and pydicom's code dictionary, or ImportError saying how to install them."""
    try:
        import highdicom
        import pydicom
        from pydicom.sr.codedict import codes
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return highdicom, pydicom, codes


def _sources(series: DicomSeries, pydicom: Any, pixels: bool = True) -> list[Any]:
    """The series' files as pydicom datasets, in ``series.files`` order."""
    out = []
    for path in series.files:
        try:
            out.append(pydicom.dcmread(path, stop_before_pixels=not pixels))
        except (OSError, pydicom.errors.InvalidDicomError) as e:
            raise ImageReadError(f"{series.folder}: series {series.series_uid}: cannot read {path.name} ({e}); "
                                 "replace or remove the file") from e
    return out


def _segment_values(mask: np.ndarray, labels: dict[str, int], shape: tuple[int, ...]) -> dict[int, str]:
    """Label name by value > 0, after checking ``mask`` and ``labels`` against each other (ValueError)."""
    if mask.shape != shape or not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise ValueError(f"the mask must be an integer (Z, Y, X) label map of shape {shape} (one plane per "
                         f"file of the series), not {mask.dtype} {mask.shape}")
    names: dict[int, str] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0 or value in names:
            raise ValueError(f"label {name!r}: value {value!r} must be a distinct integer >= 0 (regions are not "
                             "supported in DICOM SEG output)")
        if value > 0:
            names[int(value)] = name
    unnamed = sorted(set(np.unique(mask).tolist()) - set(names) - {0})
    if unnamed:
        raise ValueError(f"the mask holds label values {unnamed[:10]} that have no name in labels {labels}")
    return dict(sorted(names.items()))


def _descriptions(names: dict[int, str], algorithm: str, hd: Any, codes: Any) -> list[Any]:
    """One segment description per label value, numbered 1, 2, ... in value order."""
    ident = hd.AlgorithmIdentificationSequence(name=algorithm, family=codes.cid7162.ArtificialIntelligence,
                                               version=__version__, source="autounet")
    out = []
    for number, (value, name) in enumerate(names.items(), start=1):
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue, algorithm_type="AUTOMATIC", algorithm_identification=ident)
        desc.SegmentDescription = f"autounet label value {value}"
        out.append(desc)
    return out


def write_seg(mask: np.ndarray, series: DicomSeries, labels: dict[str, int], path: Path,
              algorithm: str = "autounet") -> Path:
    """Write ``mask`` ((Z, Y, X) label map, ``mask[z]`` on ``series.files[z]``) as a DICOM SEG
    referencing the series: one BINARY, AUTOMATIC segment per label value > 0 in ``labels``
    (name -> value; empty where the mask lacks it), identified as ``algorithm`` from autounet.
    Atomic. ImportError without highdicom; ValueError where mask and labels disagree."""
    hd, pydicom, codes = _highdicom()
    mask = np.asarray(mask)
    sources = _sources(series, pydicom)
    if not sources:
        raise ImageReadError(f"{series.folder}: series {series.series_uid} has no files; run find_series again")
    if any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for ds in sources):
        raise ValueError(f"{series.folder}: series {series.series_uid} has multi-frame files; SEG output "
                         "supports single-frame slices only")
    names = _segment_values(mask, labels, (len(sources), int(sources[0].Rows), int(sources[0].Columns)))
    numbers = np.zeros(max([int(mask.max(initial=0)), *names]) + 1, np.uint16)
    numbers[list(names)] = np.arange(1, len(names) + 1)
    pixels = numbers[mask.astype(np.int64)].astype(np.uint8 if len(names) < 256 else np.uint16)
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels, segmentation_type="BINARY",
            segment_descriptions=_descriptions(names, algorithm, hd, codes), series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1, manufacturer="autounet",
            manufacturer_model_name=algorithm[:64], software_versions=__version__, device_serial_number="0",
            content_description="autounet segmentation")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ImageReadError(f"{series.folder}: series {series.series_uid}: highdicom cannot make a SEG from it "
                             f"({e}); the source files may lack required DICOM attributes") from e
    with atomic_path(Path(path), DICOM_SEG_ENDING) as tmp:
        seg.save_as(tmp)
        fsync_file(tmp)
    return Path(path)


def read_seg(path: Path, series: DicomSeries) -> np.ndarray:
    """A DICOM SEG made by :func:`write_seg` for ``series`` as a (Z, Y, X) label map aligned with
    ``series.files``; ImageReadError where it cannot be read or refers to another series."""
    hd, pydicom, _ = _highdicom()
    try:
        seg = hd.seg.segread(path)
    except (OSError, AttributeError, TypeError, ValueError, pydicom.errors.InvalidDicomError) as e:
        raise ImageReadError(f"{path}: cannot read as a DICOM SEG ({e}); pass a file written by write_seg") from e
    referenced = {item.SeriesInstanceUID for item in getattr(seg, "ReferencedSeriesSequence", [])}
    if series.series_uid not in referenced:
        raise ImageReadError(f"{path}: the SEG refers to series {sorted(referenced)}, not to {series.series_uid} "
                             f"in {series.folder}; pass the series it was made from")
    uids = [ds.SOPInstanceUID for ds in _sources(series, pydicom, pixels=False)]
    numbers = seg.get_pixels_by_source_instance(uids, combine_segments=True, assert_missing_frames_are_empty=True)
    values = np.zeros(max(seg.get_segment_numbers(), default=0) + 1, np.int64)
    for item in seg.SegmentSequence:
        match = _VALUE_NOTE.fullmatch(str(getattr(item, "SegmentDescription", "")))
        values[item.SegmentNumber] = int(match.group(1)) if match else item.SegmentNumber
    dtype = np.uint8 if values.max(initial=0) < 256 else np.uint16 if values.max() < 65536 else np.int64
    return values[numbers].astype(dtype)
