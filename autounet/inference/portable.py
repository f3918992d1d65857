"""Portable models: a zip of checkpoints, plans, dataset.json and postprocessing.

Import rejects archives whose member paths would land outside the target folder, and the
weights inside are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Sequence

from autounet.errors import AutounetError, WorkspaceError
from autounet.inference.model import CHECKPOINTS, available_folds

MANIFEST = "autounet_model.json"


def export_model(results: Path, configurations: Sequence[str], out_zip: Path, folds: Sequence[str] | None = None,
                 checkpoint: str = "final", extra_files: Sequence[Path] = ()) -> Path:
    """Write configurations (an ensemble has several; a cascade brings its previous stage) with
    the chosen folds to a zip, with extra files (postprocessing.json, dataset.json) at its root."""
    from autounet.training.checkpoint import load_checkpoint, plans_of

    results = Path(results)
    folds = [str(f) for f in folds] if folds else available_folds(results / configurations[0], checkpoint)
    if not folds:
        raise WorkspaceError(f"{results / configurations[0]}: no trained fold to export")
    configs = list(configurations)
    for configuration in configurations:
        first = results / configuration / f"fold_{folds[0]}" / CHECKPOINTS[checkpoint]
        if not first.is_file():
            raise WorkspaceError(f"{first}: missing; cannot export fold {folds[0]} of {configuration}")
        previous = plans_of(load_checkpoint(first))["configurations"][configuration].get("previous_stage")
        if previous and previous not in configs:
            configs.append(previous)
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(f".{out_zip.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for config in configs:
            for fold in folds:
                src = results / config / f"fold_{fold}" / CHECKPOINTS[checkpoint]
                if not src.is_file():
                    raise WorkspaceError(f"{src}: missing; cannot export fold {fold} of {config}")
                z.write(src, f"{config}/fold_{fold}/{CHECKPOINTS[checkpoint]}")
        for f in extra_files:
            if Path(f).is_file():
                z.write(f, Path(f).name)
        z.writestr(MANIFEST, json.dumps({"configurations": list(configurations), "folds": folds,
                                         "checkpoint": checkpoint, "stages": configs}, indent=2))
    tmp.replace(out_zip)
    return out_zip


def _safe_members(z: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    root = target.resolve()
    for info in z.infolist():
        name = PurePosixPath(info.filename)
        dest = (root / name).resolve()
        if name.is_absolute() or ".." in name.parts or (dest != root and root not in dest.parents):
            raise AutounetError(f"refusing to import: archive member '{info.filename}' would be written outside {root}")
        if info.external_attr >> 28 == 0xA:  # a symbolic link
            raise AutounetError(f"refusing to import: archive member '{info.filename}' is a symbolic link")
    return z.infolist()


def import_model(zip_path: Path, target: Path) -> dict:
    """Unpack an exported model into ``target`` (its results folder); returns the manifest."""
    zip_path, target = Path(zip_path), Path(target)
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = _safe_members(z, target)
            if MANIFEST not in z.namelist():
                raise AutounetError(f"{zip_path}: not an autounet model (no {MANIFEST})")
            z.extractall(target, members)
    except zipfile.BadZipFile as e:
        raise AutounetError(f"{zip_path}: not a zip file ({e})") from e
    return json.loads((target / MANIFEST).read_text())
