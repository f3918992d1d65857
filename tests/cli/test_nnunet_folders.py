"""An nnU-Net user's folders: a raw dataset found only through $nnUNet_raw is planned, trained and
predicted with nnU-Net's spellings, its outputs go where nnU-Net's variables (or the current
directory) say, and nothing is written into the raw folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet import api
from autounet.cli import main

NAME = "Dataset902_Tiny"


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _plan_train_predict(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """The raw dataset under $nnUNet_raw, then plan, train fold 0 and predict its test cases through
    the CLI with nnU-Net's spellings; the raw dataset folder and the prediction folder."""
    raw = api.make_example_dataset(tmp_path / "nnraw" / NAME, dims=2, cases=6, shape=(32, 32), test_cases=2)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "nnraw"))
    before = _files(tmp_path / "nnraw")
    pred = tmp_path / "pred"
    assert main(["plan_and_preprocess", "-d", "902", "-np", "1"]) == 0
    assert main(["train", "902", "2d", "0", "--epochs", "1", "--iterations-per-epoch", "2",
                 "--val-iterations-per-epoch", "1", "--num-workers", "0", "--no-tta", "-device", "cpu"]) == 0
    assert main(["predict", "-i", str(raw / "imagesTs"), "-o", str(pred), "-d", "902", "-c", "2d", "-f", "0",
                 "--disable_tta", "-device", "cpu", "-npp", "0"]) == 0
    assert _files(tmp_path / "nnraw") == before, "nothing may be written into $nnUNet_raw"
    cases = sorted(p.name.removesuffix("_0000.png") for p in (raw / "imagesTs").glob("*_0000.png"))
    assert len(cases) == 2
    assert all((pred / f"{case}.png").is_file() for case in cases)
    return raw, pred


def _check_outputs(preprocessed: Path, results: Path) -> None:
    assert (preprocessed / "plans.json").is_file() and (preprocessed / "splits.json").is_file()
    assert list(preprocessed.rglob("*_data.npy")), "no preprocessed case"
    fold = results / "2d" / "fold_0"
    assert (fold / "checkpoint_final.pt").is_file()
    assert (fold / "validation").is_dir()


def test_all_three_nnunet_variables(tmp_path: Path, monkeypatch):
    """Outputs go to autounet/ subfolders of nnU-Net's dataset folders; the current directory stays empty."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "nnpre"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "nnres"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    _plan_train_predict(tmp_path, monkeypatch)
    _check_outputs(tmp_path / "nnpre" / NAME / "autounet", tmp_path / "nnres" / NAME / "autounet")
    assert [p.name for p in (tmp_path / "nnpre" / NAME).iterdir()] == ["autounet"]
    assert [p.name for p in (tmp_path / "nnres" / NAME).iterdir()] == ["autounet"]
    assert list(cwd.iterdir()) == []


def test_nnunet_raw_alone_writes_outputs_in_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    _plan_train_predict(tmp_path, monkeypatch)
    _check_outputs(cwd / "preprocessed" / NAME, cwd / "results" / NAME)
    assert not (cwd / "raw").exists()
