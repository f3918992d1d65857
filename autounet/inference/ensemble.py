"""Ensembling saved predictions: average the probabilities several models wrote.

Each input folder holds, per case, ``CASE.npz`` (probabilities in the original geometry) and
``CASE.json`` (geometry, file ending, labels), as ``predict --save-probabilities`` and
``train --save-probabilities`` write them. No pickle is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from autounet.errors import AutounetError
from autounet.inference.export import probabilities_to_labels
from autounet.io.atomic import read_json, write_json, write_npz
from autounet.io.geometry import Geometry
from autounet.io.image_io import write_segmentation


def load_probabilities(folder: Path, case_id: str) -> tuple[np.ndarray, dict]:
    """A case's saved probabilities (K, Z, Y, X) float32 and its metadata."""
    with np.load(Path(folder) / f"{case_id}.npz", allow_pickle=False) as z:
        probs = z["probabilities"].astype(np.float32)
    return probs, read_json(Path(folder) / f"{case_id}.json")


def common_cases(folders: Sequence[Path]) -> list[str]:
    """Case ids with saved probabilities in every folder; raises naming what is missing."""
    sets = [{p.stem for p in Path(f).glob("*.npz") if (Path(f) / f"{p.stem}.json").is_file()} for f in folders]
    if not sets[0]:
        raise AutounetError(f"{folders[0]}: no saved probabilities (CASE.npz + CASE.json); "
                            "predict or train with --save-probabilities")
    for f, s in zip(folders[1:], sets[1:]):
        missing = sorted(sets[0] - s)
        if missing:
            raise AutounetError(f"{f}: no probabilities for {len(missing)} case(s), e.g. {missing[:3]}")
    return sorted(sets[0])


def ensemble_folders(folders: Sequence[Path], output: Path, save_probabilities: bool = False) -> list[Path]:
    """Average the probabilities of several prediction folders and write the label maps."""
    if len(folders) < 2:
        raise AutounetError("ensembling needs at least two prediction folders")
    output = Path(output)
    written = []
    for case_id in tqdm(common_cases(folders), desc="ensemble", unit="case"):
        total, meta = None, None
        for folder in folders:
            probs, m = load_probabilities(folder, case_id)
            if total is not None and probs.shape != total.shape:
                raise AutounetError(f"{folder / case_id}.npz: shape {probs.shape} differs from {total.shape} "
                                    f"in {folders[0]} (different label sets?)")
            total = probs if total is None else total + probs
            meta = meta or m
        mean = total / len(folders)
        seg = probabilities_to_labels(mean, meta.get("regions_class_order"))
        path = output / f"{case_id}{meta['ending']}"
        write_segmentation(seg, Geometry.from_json(meta["geometry"]), path)
        if save_probabilities:
            write_npz(output / f"{case_id}.npz", {"probabilities": mean.astype(np.float16)})
            write_json(output / f"{case_id}.json", meta)
        written.append(path)
    return written
