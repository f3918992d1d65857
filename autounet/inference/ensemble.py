"""Ensembling saved predictions: average the probabilities several models wrote.

Each input folder holds, per case, ``CASE.npz`` and ``CASE.json`` (see
:mod:`autounet.inference.outputs`), as ``predict --save-probabilities`` and
``train --save-probabilities`` write them. No pickle is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from autounet.progress import progress

from autounet.errors import AutounetError
from autounet.inference.outputs import load_probabilities, mask_file, saved_cases, write_prediction
from autounet.inference.probabilities import average_probabilities, probabilities_to_labels
from autounet.io.atomic import check_writable
from autounet.io.geometry import Geometry
from autounet.io.image_io import SUPPORTED_ENDINGS


def common_cases(folders: Sequence[Path]) -> list[str]:
    """Case ids with saved probabilities in every folder; raises naming what is missing."""
    sets = [saved_cases(f) for f in folders]
    if not sets[0]:
        raise AutounetError(f"{folders[0]}: no saved probabilities (CASE.npz + CASE.json); "
                            "predict or train with --save-probabilities")
    for f, s in zip(folders[1:], sets[1:]):
        missing = sorted(sets[0] - s)
        if missing:
            raise AutounetError(f"{f}: no probabilities for {len(missing)} case(s), e.g. {missing[:3]}")
    return sorted(sets[0])


def averaged_case(folders: Sequence[Path], case_id: str):
    """A case's probabilities averaged over the folders, and the first folder's metadata."""
    metas = []

    def probabilities():
        for folder in folders:
            probs, meta = load_probabilities(folder, case_id)
            metas.append(meta)
            yield probs

    try:
        mean = average_probabilities(probabilities())
    except ValueError as e:
        raise AutounetError(f"{case_id}.npz in {', '.join(map(str, folders))}: {e}") from e
    return mean, metas[0]


def _ending(meta: dict, folder: Path, case_id: str) -> str:
    """The mask's file ending a case's metadata names: one autounet writes, nothing else."""
    ending = meta.get("ending")
    if ending not in SUPPORTED_ENDINGS:
        raise AutounetError(f"{folder / case_id}.json: 'ending' {ending!r} is not an image file ending autounet "
                            f"writes ({', '.join(SUPPORTED_ENDINGS)})")
    return ending


def ensemble_folders(folders: Sequence[Path], output: Path, save_probabilities: bool = False) -> list[Path]:
    """Average the probabilities of several prediction folders and write the label maps into
    ``output``, which must be none of them (it would overwrite their files)."""
    if len(folders) < 2:
        raise AutounetError("ensembling needs at least two prediction folders")
    output = Path(output)
    if any(Path(f).resolve() == output.resolve() for f in folders):
        raise AutounetError(f"{output}: the output folder is one of the input folders, whose probabilities and "
                            "masks it would overwrite; choose another -o")
    cases = common_cases(folders)
    check_writable(output)
    written = []
    for case_id in progress(cases, desc="ensemble", unit="case"):
        mean, meta = averaged_case(folders, case_id)
        seg = probabilities_to_labels(mean, meta.get("regions_class_order"))
        ending = _ending(meta, folders[0], case_id)
        written.append(write_prediction(mask_file(output, case_id, ending), ending, seg,
                                        Geometry.from_json(meta["geometry"]), mean if save_probabilities else None,
                                        meta if save_probabilities else None))
    return written
