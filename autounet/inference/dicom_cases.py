"""DICOM series as cases to predict: each series one case (its id from the patient and series,
see :mod:`autounet.io.dicom`), its mask written as NIfTI in the series' geometry or, on request,
as a DICOM SEG that references the series."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from autounet.inference.cases import Prepared, StageInput, prepare_images
from autounet.inference.outputs import mask_file
from autounet.io.dicom import DICOM_SEG_ENDING, DicomSeries, find_series, read_series, write_seg
from autounet.io.geometry import Geometry
from autounet.io.image_io import from_sitk, write_segmentation

OUTPUT_FORMATS = ("nifti", "dicom-seg")
NIFTI = ".nii.gz"


@dataclass(frozen=True)
class DicomCase:
    """A DICOM series to predict; its mask goes to ``output`` (.nii.gz, or .dcm: a DICOM SEG)."""

    case_id: str
    series: DicomSeries
    ending: str
    output: Path
    next_stage: ClassVar[None] = None

    @property
    def source(self) -> Path:
        return self.series.folder

    @property
    def inputs(self) -> tuple[Path, ...]:
        return self.series.files

    def read(self) -> tuple[np.ndarray, Geometry]:
        """The series as images (1, Z, Y, X) float32 and its geometry (raises ImageReadError)."""
        images, geometry = from_sitk(read_series(self.series), f"{self.series.folder} (series {self.series.series_uid})")
        return images.astype(np.float32, copy=False), geometry

    def prepare(self, stages: Sequence[StageInput]) -> Prepared:
        return prepare_images(*self.read(), stages, self.source)

    def write_mask(self, seg: np.ndarray, geometry: Geometry, labels: dict[str, Any], path: Path) -> None:
        """The mask as a DICOM SEG referencing the series, or as NIfTI in its geometry."""
        if self.ending == DICOM_SEG_ENDING:
            write_seg(seg, self.series, {str(k): v for k, v in labels.items()}, path)
        else:
            write_segmentation(seg, geometry, path)


def find_dicom_cases(folder: Path, output: Path, output_format: str = "nifti"
                     ) -> tuple[list[DicomCase], dict[str, str]]:
    """A case per DICOM series under ``folder`` (masks into the folder ``output``), and the
    series or files that cannot be used (problems)."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; choose {', '.join(OUTPUT_FORMATS)}")
    if output_format == "dicom-seg":
        import importlib.util

        if importlib.util.find_spec("highdicom") is None:
            raise ImportError("--output-format dicom-seg needs highdicom: pip install 'autounet[dicom]'")
    ending = DICOM_SEG_ENDING if output_format == "dicom-seg" else NIFTI
    series, problems = find_series(folder)
    if not series:
        raise ValueError(f"{folder}: no readable DICOM series found" + (f" ({next(iter(problems.values()))})"
                                                                         if problems else ""))
    return [DicomCase(s.case_id, s, ending, mask_file(output, s.case_id, ending)) for s in series], problems
