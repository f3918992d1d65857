"""Which files and folders hold DICOM: a file by its name or its Part 10 preamble, and the series
GDCM finds in each folder that holds such a file."""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from autounet.io.image_io import SUPPORTED_ENDINGS

_DICOM_NAMES = (".dcm", ".dicom", ".ima")
_OTHER_FILES = SUPPORTED_ENDINGS + (".gz", ".jpg", ".jpeg", ".json", ".csv", ".txt", ".npy", ".npz", ".zip", ".onnx", ".pt")


def looks_like_dicom(path: Path) -> bool:
    """Whether ``path`` is a DICOM file by its name (.dcm, .dicom, .ima) or, for any other name
    but the image, table and model files autounet reads, by the "DICM" that DICOM files written
    to the standard (Part 10) hold at byte 128."""
    name = path.name.lower()
    if name.endswith(_DICOM_NAMES):
        return True
    if name.endswith(_OTHER_FILES):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def series_folders(folder: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Each folder under (and including) ``folder`` that holds files, with GDCM's series UIDs there;
    GDCM is asked only where a file :func:`looks_like_dicom` (it warns on stderr where it finds no
    series, as in every folder of NIfTI images)."""
    out = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        visible = [f for f in files if not f.startswith(".")]
        if visible:
            dicom = any(looks_like_dicom(Path(here) / f) for f in visible)
            out.append((Path(here), tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(here)) if dicom else ()))
    return sorted(out)
