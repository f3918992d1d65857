"""A tiny trained workspace for the bad-input suite, copied afresh for every row.

``World`` holds the paths a row's command and its breakage use; ``snapshot`` records every file
(size, modification time, content digest) so that a row can prove nothing was written or lost.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autounet import api
from autounet.cli import main

DATASET = "Dataset001_Bad"


@dataclass(frozen=True)
class World:
    """A copy of the trained workspace: ``root`` (the workspace), ``raw`` (the dataset), ``tmp``."""

    tmp: Path

    @property
    def root(self) -> Path:
        return self.tmp / "ws"

    @property
    def raw(self) -> Path:
        return self.root / "raw" / DATASET

    @property
    def results(self) -> Path:
        return self.root / "results" / DATASET

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed" / DATASET

    @property
    def model_zip(self) -> Path:
        return self.tmp / "model.zip"

    def fold(self, k: int = 0) -> Path:
        return self.results / "3d_fullres" / f"fold_{k}"

    def args(self, command: str) -> list[str]:
        """A command line as the table shows it, placeholders filled, ``autounet`` dropped."""
        text = command.format(ws=self.root, raw=self.raw, tmp=self.tmp, results=self.results, zip=self.model_zip,
                              pre=self.preprocessed, fold=self.fold())
        words = shlex.split(text)
        assert words[0] == "autounet", command
        return words[1:]


def build(tmp: Path) -> World:
    """Raw data (6 training and 2 test cases, anisotropic NIfTI), planned and preprocessed, fold 0
    of 3d_fullres trained for a few iterations with probabilities saved, and exported."""
    world = World(tmp)
    api.make_example_dataset(world.raw, dims=3, cases=6, channels=1, anisotropic=True, shape=(10, 24, 24),
                             test_cases=2)
    api.plan_and_preprocess(world.raw, root=world.root, processes=1, configurations=["3d_fullres"])
    config = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
                                validation=api.PredictSettings(mirror=False, save_probabilities=True, processes=0))
    api.train(world.raw, "3d_fullres", 0, root=world.root, device="cpu", config=config)
    api.export_model(world.raw, world.model_zip, configurations=["3d_fullres"], root=world.root)
    return world


def copy(base: World, tmp: Path) -> World:
    shutil.copytree(base.tmp, tmp, dirs_exist_ok=True, symlinks=True)
    return World(tmp)


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``folder``: (size, content digest), by relative path."""
    return {str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(world: World, command: str, capsys, caplog) -> tuple[int, str]:
    """Run a command in this process; its exit code and everything it told the user."""
    caplog.clear()
    try:
        code = main(world.args(command))
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.err + captured.out + caplog.text


def write_image(path: Path, array: np.ndarray, like: Path | None = None) -> None:
    """Write ``array`` (z, y, x) as an image, with the geometry of ``like`` when given."""
    img = sitk.GetImageFromArray(array)
    if like is not None:
        ref = sitk.ReadImage(str(like))
        img.SetSpacing(ref.GetSpacing())
        img.SetOrigin(ref.GetOrigin())
        img.SetDirection(ref.GetDirection())
    sitk.WriteImage(img, str(path))


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
