"""Converting a MedMNIST .npz file into a case-level raw dataset: pixels kept exactly, targets and
dataset.json readable, splits where they were asked for, everything or nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import autounet.io.medmnist as medmnist
from autounet.errors import DatasetError, WorkspaceError
from autounet.io.dataset_json import load_dataset_json
from autounet.io.image_io import read_image
from autounet.io.medmnist import convert_medmnist
from autounet.io.targets import read_targets
from autounet.workspace import RawPaths

COUNTS = {"train": 7, "val": 3, "test": 4}


def make_npz(path: Path, image_shape: tuple[int, ...] = (6, 5), classes: int = 3, columns: int = 1,
             splits: dict[str, int] = COUNTS) -> dict[str, np.ndarray]:
    """A MedMNIST-like file: random uint8 images, labels (N, 1) with every class, or (N, K) 0/1."""
    rng = np.random.default_rng(len(image_shape) + columns)
    arrays = {}
    for split, n in splits.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
        labels = np.arange(n) % classes if columns == 1 else rng.integers(0, 2, (n, columns))
        arrays[f"{split}_labels"] = labels.reshape(n, columns).astype(np.uint8 if columns > 1 else np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def _ids(split: str, n: int) -> list[str]:
    return [f"{split}_{i:05d}" for i in range(n)]


def _reads_back(out: Path, arrays: dict, placed: dict[str, str], reader: str = "natural2d", ending: str = ".png"):
    """Every image equals its source array; every target its source label."""
    spec = json.loads(RawPaths(out).dataset_json.read_text())
    for where in ("Tr", "Ts"):
        splits = [s for s, w in placed.items() if w == where]
        ids = [c for s in splits for c in _ids(s, len(arrays[f"{s}_labels"]))]
        if not splits:
            assert not RawPaths(out).images(where).exists() and not RawPaths(out).targets(where).exists()
            continue
        assert sorted(p.name for p in RawPaths(out).images(where).iterdir()) == sorted(f"{c}_0000{ending}" for c in ids)
        targets = read_targets(RawPaths(out).targets(where), spec["task"], spec["labels"], case_ids=ids)
        for s in splits:
            for i, case in enumerate(_ids(s, len(arrays[f"{s}_labels"]))):
                image, _ = read_image(RawPaths(out).image_file(case, 0, ending, where), reader)
                source = arrays[f"{s}_images"][i]
                expected = np.moveaxis(source, -1, 0)[:, None] if source.shape[-1:] == (3,) else source[None]
                assert image.dtype == np.uint8 and np.array_equal(image, expected.reshape(image.shape))
                assert image.shape[0] == len(spec["channel_names"])
                assert np.array_equal(targets[case], arrays[f"{s}_labels"][i].astype(np.float64))


def test_2d_grayscale_with_test_split(tmp_path: Path):
    arrays = make_npz(tmp_path / "pathmnist.npz")
    out = convert_medmnist(tmp_path / "pathmnist.npz", tmp_path / "raw" / "Dataset201_Path")
    assert out == (tmp_path / "raw" / "Dataset201_Path").resolve()
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr", "test": "Ts"})
    assert json.loads(RawPaths(out).dataset_json.read_text()) == {
        "name": "Dataset201_Path", "channel_names": {"0": "image"},
        "labels": {"class_0": 0, "class_1": 1, "class_2": 2}, "numTraining": 10, "file_ending": ".png",
        "task": "classification", "source": "pathmnist.npz", "medmnist_splits": COUNTS, "medmnist_holdout": "test"}
    assert RawPaths(out).targets("Tr").read_text().splitlines()[:3] == ["case,label", "train_00000,0", "train_00001,1"]
    spec = load_dataset_json(out)
    assert spec.channel_names == ("image",) and spec.reader == "natural2d" and spec.num_training == 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["Dataset201_Path"]  # no temporary left


def test_without_test_split_and_with_val_held_out(tmp_path: Path):
    arrays = make_npz(tmp_path / "a.npz", splits={"train": 5, "val": 3})
    out = convert_medmnist(tmp_path / "a.npz", tmp_path / "raw" / "Dataset202_NoTest")
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr"})
    raw = RawPaths(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (raw.dataset_json, raw.images("Tr"),
                                                                            raw.targets("Tr")))
    arrays = make_npz(tmp_path / "b.npz")
    out = convert_medmnist(tmp_path / "b.npz", tmp_path / "raw" / "Dataset203_Val", holdout="val")
    _reads_back(out, arrays, {"train": "Tr", "val": "Ts", "test": "Tr"})
    assert json.loads(RawPaths(out).dataset_json.read_text())["numTraining"] == 11
    out = convert_medmnist(tmp_path / "b.npz", tmp_path / "raw" / "Dataset204_All", holdout="none")
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr", "test": "Tr"})


def test_rgb_images_are_one_three_channel_png(tmp_path: Path):
    arrays = make_npz(tmp_path / "blood.npz", image_shape=(6, 5, 3), classes=2)
    out = convert_medmnist(tmp_path / "blood.npz", tmp_path / "Dataset205_Blood", class_names=["a", "b"])
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr", "test": "Ts"})
    spec = json.loads(RawPaths(out).dataset_json.read_text())
    assert spec["channel_names"] == {"0": "R", "1": "G", "2": "B"} and spec["labels"] == {"a": 0, "b": 1}


def test_3d_images_are_nifti_with_unit_spacing(tmp_path: Path):
    arrays = make_npz(tmp_path / "organ3d.npz", image_shape=(4, 6, 5), splits={"train": 3, "val": 3, "test": 2})
    out = convert_medmnist(tmp_path / "organ3d.npz", tmp_path / "Dataset206_Organ3D", processes=2)
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr", "test": "Ts"}, reader="simpleitk", ending=".nii.gz")
    _, geometry = read_image(RawPaths(out).image_file("val_00002", 0, ".nii.gz"), "simpleitk")
    assert geometry.spacing == (1.0, 1.0, 1.0) and geometry.shape == (4, 6, 5) and geometry.file_dims == 3
    assert json.loads(RawPaths(out).dataset_json.read_text())["file_ending"] == ".nii.gz"


def test_multilabel(tmp_path: Path):
    arrays = make_npz(tmp_path / "chest.npz", columns=3)
    out = convert_medmnist(tmp_path / "chest.npz", tmp_path / "Dataset207_Chest",
                           class_names=["effusion", "mass", "nodule"])
    _reads_back(out, arrays, {"train": "Tr", "val": "Tr", "test": "Ts"})
    spec = json.loads(RawPaths(out).dataset_json.read_text())
    assert spec["task"] == "multilabel" and spec["labels"] == {"effusion": 0, "mass": 1, "nodule": 2}
    assert RawPaths(out).targets("Tr").read_text().splitlines()[0] == "case,effusion,mass,nodule"


def test_existing_or_misnamed_target_and_bad_arguments_are_refused(tmp_path: Path):
    make_npz(tmp_path / "a.npz")
    (tmp_path / "Dataset208_Taken").mkdir()
    with pytest.raises(WorkspaceError, match="exists"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "Dataset208_Taken")
    with pytest.raises(WorkspaceError, match="dataset id 208"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "Dataset208_Other")
    with pytest.raises(WorkspaceError, match="DatasetNNN_Name"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "PathMNIST")
    with pytest.raises(ValueError, match="holdout"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "Dataset209_X", holdout="validation")
    with pytest.raises(ValueError, match="class_names must be 3"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "Dataset209_X", class_names=["a", "b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset208_Taken", "a.npz"]


def test_broken_files_are_named_with_every_problem(tmp_path: Path):
    target = tmp_path / "raw" / "Dataset210_X"
    with pytest.raises(DatasetError, match="missing.npz: file not found"):
        convert_medmnist(tmp_path / "missing.npz", target)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz archive"):
        convert_medmnist(tmp_path / "junk.npz", target)
    arrays = make_npz(tmp_path / "bad.npz")
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    arrays["val_labels"] = arrays["val_labels"][:2]
    arrays["test_images"] = arrays["test_images"][0]
    del arrays["train_labels"]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as e:
        convert_medmnist(tmp_path / "bad.npz", target)
    problems = str(e.value).splitlines()
    assert all(p.startswith(f"{(tmp_path / 'bad.npz').resolve()}: ") for p in problems)
    assert any("missing key(s) train_labels" in p for p in problems)
    assert any("val_images holds 3 image(s) but val_labels 2 label row(s)" in p for p in problems)
    assert any("test_images has shape (6, 5)" in p for p in problems)
    assert any("differ in shape" in p for p in problems)
    make_npz(tmp_path / "neg.npz")
    arrays = dict(np.load(tmp_path / "neg.npz"))
    arrays["val_labels"][0] = -1
    np.savez(tmp_path / "neg.npz", **arrays)
    with pytest.raises(DatasetError, match="negative"):
        convert_medmnist(tmp_path / "neg.npz", target)
    assert not (tmp_path / "raw").exists() or not list((tmp_path / "raw").iterdir())


def test_a_failure_midway_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_npz(tmp_path / "a.npz")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(medmnist, "write_dataset_json", fail)
    with pytest.raises(OSError, match="disk full"):
        convert_medmnist(tmp_path / "a.npz", tmp_path / "raw" / "Dataset211_X")
    assert list((tmp_path / "raw").iterdir()) == []  # neither the dataset nor its hidden temporary


def test_case_ids_widen_past_five_digits():
    assert medmnist.case_ids("train", 3) == ["train_00000", "train_00001", "train_00002"]
    assert medmnist.case_ids("val", 100001)[-1] == "val_100000"
    assert medmnist.case_ids("val", 100000)[-1] == "val_99999"


def test_a_huge_class_value_is_refused_before_any_memory_goes_to_it(tmp_path: Path):
    """One label value of 2e9 built a dict with 2e9 entries (MemoryError, or the OOM killer)."""
    arrays = make_npz(tmp_path / "in.npz")
    arrays["train_labels"][0, 0] = 2_000_000_000
    np.savez_compressed(tmp_path / "in.npz", **arrays)
    with pytest.raises(DatasetError, match=r"in.npz: class values up to 2000000000: more than 1000 classes"):
        convert_medmnist(tmp_path / "in.npz", tmp_path / "raw" / "Dataset201_X")
    assert not (tmp_path / "raw" / "Dataset201_X").exists()


def test_a_file_larger_than_memory_allows_is_refused_from_its_headers(tmp_path: Path, monkeypatch):
    make_npz(tmp_path / "in.npz")
    monkeypatch.setattr(medmnist, "ram_gb", lambda: 1e-9)  # a 1-byte machine: the file's arrays do not fit
    with pytest.raises(DatasetError, match=r"in.npz: its arrays need .* GB in memory, more than 50% of this machine"):
        convert_medmnist(tmp_path / "in.npz", tmp_path / "raw" / "Dataset201_X")
    assert not (tmp_path / "raw" / "Dataset201_X").exists()
