"""Portable models: a zip of checkpoints, dataset.json, postprocessing and a manifest, laid out
like a results folder (:class:`autounet.workspace.ResultsPaths`), so that prediction reads an
unpacked model exactly as it reads a workspace.

Import rejects archives whose member paths would land outside the target folder, and the
weights inside are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from autounet.errors import AutounetError, WorkspaceError
from autounet.io.atomic import atomic_folder, atomic_path, check_writable
from autounet.model.checkpoint import peek_checkpoint, plans_of
from autounet.workspace import ResultsPaths, name_problem

ARCHIVE = ResultsPaths(Path())  # the layout inside the zip, as relative paths


def _member(path: Path) -> str:
    return PurePosixPath(path).as_posix()


def with_previous_stages(results: ResultsPaths, configurations: Sequence[str], fold: str,
                          checkpoint: str) -> list[str]:
    """The configurations plus each cascade's previous stage (its input comes from it)."""
    configs = list(configurations)
    for configuration in configurations:
        first = results.fold(configuration, fold).checkpoint(checkpoint)
        if not first.is_file():
            raise WorkspaceError(f"{first}: missing; cannot export fold {fold} of {configuration}")
        previous = plans_of(peek_checkpoint(first)).configurations[configuration].previous_stage
        if previous and previous not in configs:
            configs.append(previous)
    return configs


def export_model(results: ResultsPaths, configurations: Sequence[str], out_zip: Path,
                 folds: Sequence[str] | None = None, checkpoint: str = "final",
                 dataset_json: Path | None = None, postprocessing: Path | None = None,
                 mirror: Sequence[bool] | None = None, thresholds: Sequence[float] | None = None) -> Path:
    """Write configurations (an ensemble has several; a cascade brings its previous stage) with
    the chosen folds to a zip, with the dataset.json and postprocessing rules beside them.
    mirror, thresholds : a case-level model's test-time mirroring per configuration and decision
    thresholds, as the selection chose them, kept in the manifest."""
    folds = [str(f) for f in folds] if folds else results.trained_folds(configurations[0], checkpoint)
    if not folds:
        raise WorkspaceError(f"{results.configuration(configurations[0])}: no trained fold to export")
    stages = with_previous_stages(results, configurations, folds[0], checkpoint)
    out_zip = Path(out_zip)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for config in stages:
            for fold in folds:
                src = results.fold(config, fold).checkpoint(checkpoint)
                if not src.is_file():
                    raise WorkspaceError(f"{src}: missing; cannot export fold {fold} of {config}")
                z.write(src, _member(ARCHIVE.fold(config, fold).checkpoint(checkpoint)))
        for src, member in ((dataset_json, ARCHIVE.dataset_json), (postprocessing, ARCHIVE.postprocessing)):
            if src is not None and Path(src).is_file():
                z.write(src, _member(member))
        z.writestr(_member(ARCHIVE.model_manifest), json.dumps(
            {"configurations": list(configurations), "folds": folds, "checkpoint": checkpoint, "stages": stages,
             **({"mirror": [bool(m) for m in mirror]} if mirror is not None else {}),
             **({"thresholds": [float(t) for t in thresholds]} if thresholds is not None else {})}, indent=2))
    return out_zip


def _safe_members(z: zipfile.ZipFile, target: Path, shown: str) -> list[zipfile.ZipInfo]:
    """Every member, once each is proven to land inside ``target`` (``shown`` in messages)."""
    root = target.resolve()
    for info in z.infolist():
        name = PurePosixPath(info.filename)
        dest = (root / name).resolve()
        if (name.is_absolute() or ".." in name.parts or "\\" in info.filename or ":" in info.filename
                or (dest != root and root not in dest.parents)):
            raise AutounetError(f"refusing to import: archive member '{info.filename}' would be written outside {shown}")
        if info.external_attr >> 28 == 0xA:  # a symbolic link
            raise AutounetError(f"refusing to import: archive member '{info.filename}' is a symbolic link")
    return z.infolist()


def read_manifest(results: ResultsPaths) -> dict:
    """An unpacked model's manifest, its names checked before any of them reaches a path."""
    path = results.model_manifest
    try:
        manifest = json.loads(path.read_text())
        configurations, folds = list(manifest["configurations"]), [str(f) for f in manifest["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AutounetError(f"{path}: not an autounet model manifest ({type(e).__name__}: {e})") from e
    problems = ([name_problem(c, "configuration") for c in configurations + list(manifest.get("stages", []))]
                + [name_problem(f, "fold") for f in folds])
    problems = [p for p in problems if p is not None]
    if problems or not configurations or not folds:
        raise AutounetError(f"{path}: {'; '.join(problems) or 'no configurations or folds'}")
    return {**manifest, "configurations": configurations, "folds": folds}


def import_model(zip_path: Path, target: Path, overwrite: bool = False) -> dict:
    """Unpack an exported model into ``target`` (then a results folder); returns the manifest.

    A ``target`` that holds anything is refused unless ``overwrite``: then its old contents are
    replaced as a whole (never a mix of two models), once the new model has been unpacked."""
    zip_path, target = Path(zip_path), Path(target)
    check_writable(target)
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not overwrite:
        raise AutounetError(f"{target}: not empty; importing would mix two models. Choose an empty folder, or "
                            "pass --overwrite to replace what it holds")
    if target.exists() and not target.is_dir():
        raise AutounetError(f"{target}: exists and is not a folder")
    with atomic_folder(target) as tmp:
        manifest = _unpack(zip_path, tmp, str(target))
        if occupied:
            shutil.rmtree(target)
    return manifest


def _unpack(zip_path: Path, folder: Path, shown: str) -> dict:
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = _safe_members(z, folder, shown)
            if _member(ARCHIVE.model_manifest) not in z.namelist():
                raise AutounetError(f"{zip_path}: not an autounet model (no {_member(ARCHIVE.model_manifest)})")
            z.extractall(folder, members)
    except zipfile.BadZipFile as e:
        raise AutounetError(f"{zip_path}: not a zip file ({e})") from e
    return read_manifest(ResultsPaths(folder))


@contextmanager
def unpacked_model(zip_path: Path) -> Iterator[tuple[ResultsPaths, dict]]:
    """An exported model unpacked to a temporary folder for the duration of the block (removed
    afterwards, also when the block fails): its results layout and its manifest."""
    with tempfile.TemporaryDirectory(prefix="autounet_model_") as tmp:
        manifest = _unpack(Path(zip_path), Path(tmp), f"the folder {Path(zip_path).name} is unpacked to")
        yield ResultsPaths(Path(tmp)), manifest
