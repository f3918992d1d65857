"""A prediction folder's files, as `autounet predict`, `autounet ensemble` and training's
validation write them.

Per case: ``CASE<ending>`` (the mask, in the input's format and geometry) and, with
``--save-probabilities``, ``CASE.npz`` (probabilities (K, Z, Y, X) as float16) and ``CASE.json``
(geometry, file ending, labels: what turns the probabilities into a mask again, no pickle).
They are written in the order probabilities, mask, metadata, each atomically, so the last one
present marks a finished case; training's validation resumes from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.io.atomic import read_json, write_json, write_npz
from autounet.io.geometry import Geometry
from autounet.io.image_io import write_segmentation
from autounet.workspace import checked_ending, checked_name

PROBABILITIES, META = ".npz", ".json"


def mask_file(folder: Path, case_id: str, ending: str) -> Path:
    """A case's mask in a prediction folder (the names checked: it stays inside ``folder``)."""
    return Path(folder) / f"{checked_name(case_id, 'case id')}{checked_ending(ending)}"


def _beside(mask: Path, ending: str, suffix: str) -> Path:
    """The probabilities or metadata file that goes with a mask (one named freely, too)."""
    return mask.with_name(mask.name[: -len(ending)] + suffix)


def prediction_meta(case_id: str, geometry: Geometry, ending: str, plans: Plans) -> dict:
    """CASE.json: what saved probabilities need to be turned into a mask again."""
    return {"case_id": case_id, "geometry": geometry.to_json(), "ending": ending, "labels": plans.labels,
            "regions_class_order": plans.regions_class_order}


def write_prediction(mask: Path, ending: str, seg: np.ndarray, geometry: Geometry,
                     probabilities: np.ndarray | None = None, meta: dict | None = None,
                     write_mask: Callable[[np.ndarray, Geometry, Path], None] = write_segmentation) -> Path:
    """Write a case's probabilities (if given), mask (with ``write_mask``: a DICOM SEG is written
    otherwise), and metadata (if given), in that order."""
    if probabilities is not None:
        write_npz(_beside(mask, ending, PROBABILITIES), {"probabilities": probabilities.astype(np.float16)})
    write_mask(seg, geometry, mask)
    if meta is not None:
        write_json(_beside(mask, ending, META), meta)
    return mask


def prediction_done(mask: Path, ending: str, with_probabilities: bool) -> bool:
    """Whether a case's files are complete: its mask, and its probabilities and metadata when
    they are asked for (a validation resumed with --save-probabilities adds them to finished cases)."""
    sidecars = (_beside(mask, ending, PROBABILITIES), _beside(mask, ending, META)) if with_probabilities else ()
    return all(f.is_file() for f in (mask, *sidecars))


def probabilities_saved(folder: Path, case_id: str) -> bool:
    """Whether a prediction folder holds a case's probabilities and metadata."""
    return all((Path(folder) / f"{case_id}{suffix}").is_file() for suffix in (PROBABILITIES, META))


def load_probabilities(folder: Path, case_id: str) -> tuple[np.ndarray, dict]:
    """A case's saved probabilities (K, Z, Y, X) float32 and its metadata."""
    with np.load(Path(folder) / f"{case_id}{PROBABILITIES}", allow_pickle=False) as z:
        probs = z["probabilities"].astype(np.float32)
    return probs, read_json(Path(folder) / f"{case_id}{META}")


def saved_cases(folder: Path) -> set[str]:
    """Case ids with saved probabilities and metadata in a prediction folder."""
    return {p.stem for p in Path(folder).glob(f"*{PROBABILITIES}") if probabilities_saved(folder, p.stem)}
