"""Where raw datasets, preprocessed data and results live.

One root folder: ``--root``, else the ``AUTOUNET_ROOT`` environment variable, else the current
directory. Inside it::

    raw/DatasetXXX_Name/            imagesTr/ labelsTr/ imagesTs/ dataset.json
    preprocessed/DatasetXXX_Name/   fingerprint.json plans.json splits.json <data_identifier>/
    results/DatasetXXX_Name/        <configuration>/fold_<k>/ ...
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from autounet.errors import WorkspaceError

ROOT_ENV = "AUTOUNET_ROOT"


def default_root() -> Path:
    """``$AUTOUNET_ROOT`` if set, else the current directory."""
    return Path(os.environ.get(ROOT_ENV) or ".").resolve()


@dataclass(frozen=True)
class DatasetPaths:
    """The folders of one dataset inside a workspace."""

    name: str
    raw: Path
    preprocessed: Path
    results: Path

    @property
    def fingerprint(self) -> Path:
        return self.preprocessed / "fingerprint.json"

    @property
    def plans(self) -> Path:
        return self.preprocessed / "plans.json"

    @property
    def splits(self) -> Path:
        return self.preprocessed / "splits.json"

    def data_folder(self, data_identifier: str) -> Path:
        return self.preprocessed / data_identifier


def resolve_dataset(dataset: str | int | Path, root: Path | None = None) -> DatasetPaths:
    """Find a dataset by id (``4``), name (``Dataset004_Hippocampus``) or raw folder path."""
    root = Path(root).resolve() if root is not None else default_root()
    raw_root = root / "raw"
    text = str(dataset)
    candidate = Path(text).expanduser()
    if (candidate / "dataset.json").is_file() or (os.sep in text and candidate.is_dir()):
        raw = candidate.resolve()
    elif re.fullmatch(r"\d+", text):
        matches = sorted(raw_root.glob(f"Dataset{int(text):03d}_*")) if raw_root.is_dir() else []
        if not matches:
            raise WorkspaceError(f"no dataset with id {text} in {raw_root} (expected a folder Dataset{int(text):03d}_NAME)")
        if len(matches) > 1:
            raise WorkspaceError(f"dataset id {text} is ambiguous in {raw_root}: {[m.name for m in matches]}")
        raw = matches[0]
    elif (raw_root / text).is_dir():
        raw = raw_root / text
    else:
        raise WorkspaceError(
            f"dataset '{text}' not found: not a folder with a dataset.json, and no {raw_root / text} "
            f"(the workspace root is {root}; set --root or ${ROOT_ENV})"
        )
    name = raw.name
    return DatasetPaths(name=name, raw=raw, preprocessed=root / "preprocessed" / name, results=root / "results" / name)
