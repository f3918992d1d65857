"""plan_and_preprocess end to end: outputs, geometry, resumption after a kill, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.cli import main
from autounet.io.atomic import read_json
from autounet.preprocess.crop import uncrop


def _case_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def test_3d_two_channels_anisotropic(tiny_3d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    plans = api.plan_and_preprocess(tiny_3d, root=root, processes=1)
    pre = root / "preprocessed" / tiny_3d.name
    for name in ("fingerprint.json", "plans.json", "splits.json"):
        assert (pre / name).is_file()
    assert set(plans.configurations) >= {"2d", "3d_fullres"}
    splits = read_json(pre / "splits.json")
    assert len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == [f"case_{i:03d}" for i in range(6)]
    full = plans.configurations["3d_fullres"]
    for ident in ("2d", "3d_fullres"):
        files = _case_files(pre / ident)
        assert len(files) == 6 * 4
    data = np.load(pre / "3d_fullres" / "case_000_data.npy", mmap_mode="r")
    seg = np.load(pre / "3d_fullres" / "case_000_seg.npy", mmap_mode="r")
    meta = read_json(pre / "3d_fullres" / "case_000.json")
    assert data.shape[0] == 2 and data.dtype == np.float32 and data.shape[1:] == seg.shape
    assert meta["spacing"] == pytest.approx(list(full.spacing))
    assert set(np.unique(seg)) <= {0, 1, 2}
    # z-scored per case: mean ~0, std ~1 for each channel
    assert abs(float(data[0].mean())) < 0.1 and abs(float(data[0].std()) - 1) < 0.1
    with np.load(pre / "3d_fullres" / "case_000_locs.npz", allow_pickle=False) as locs:
        for key in locs.files:
            label = int(key.split("_")[1])
            assert np.all(seg[tuple(locs[key].T)] == label)


def test_crop_box_in_metadata_restores_original_geometry(tiny_3d: Path, tmp_path: Path):
    """Uncropping with the recorded box and undoing the transpose gives the original label map."""
    from autounet.io.image_io import read_segmentation

    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_3d, root=root, processes=1, configurations=["3d_fullres"])
    meta = read_json(root / "preprocessed" / tiny_3d.name / "3d_fullres" / "case_001.json")
    seg, geo = read_segmentation(tiny_3d / "labelsTr" / "case_001.nii.gz", "simpleitk")
    box = meta["geometry"]["crop_box"]
    cropped = seg[tuple(slice(a, b) for a, b in box)]
    restored = uncrop(cropped, box, seg.shape)
    assert np.array_equal(restored, seg)
    assert meta["geometry"]["origin"] == pytest.approx(list(geo.origin))
    assert tuple(meta["geometry"]["shape"]) == seg.shape


@pytest.mark.parametrize("fixture,channels", [("tiny_2d", 1), ("tiny_rgb", 3)])
def test_2d_png(fixture: str, channels: int, request, tmp_path: Path):
    raw = request.getfixturevalue(fixture)
    plans = api.plan_and_preprocess(raw, root=tmp_path / "ws", processes=1)
    assert set(plans.configurations) == {"2d"}
    data = np.load(tmp_path / "ws" / "preprocessed" / raw.name / "2d" / "case_000_data.npy")
    assert data.shape[:2] == (channels, 1)
    if channels == 3:
        assert [n.scheme for n in plans.normalization] == ["rgb_to_0_1"] * 3
        assert 0.0 <= data.min() and data.max() <= 1.0


def test_cli_by_id_with_root_env(tiny_2d: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOUNET_ROOT", str(tmp_path))
    assert main(["plan_and_preprocess", "2", "-p", "1"]) == 0
    assert (tmp_path / "preprocessed" / tiny_2d.name / "plans.json").is_file()
    assert main(["plan_and_preprocess", "77", "-p", "1"]) == 2
    assert "no dataset with id 77" in capsys.readouterr().err


def test_cli_help_for_every_subcommand():
    for cmd in ("make_example_dataset", "verify_dataset", "plan_and_preprocess"):
        out = subprocess.run([sys.executable, "-m", "autounet.cli", cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage:" in out.stdout


def test_identical_input_gives_identical_output(tiny_3d: Path, tmp_path: Path):
    api.plan_and_preprocess(tiny_3d, root=tmp_path / "a", processes=1)
    api.plan_and_preprocess(tiny_3d, root=tmp_path / "b", processes=2)
    a = tmp_path / "a" / "preprocessed" / tiny_3d.name
    b = tmp_path / "b" / "preprocessed" / tiny_3d.name
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from autounet import api
    from autounet.preprocess import pipeline
    calls = {"meta": 0}
    real_json, real_npy = pipeline.write_json, pipeline.write_npy
    def write_json(path, obj):
        calls["meta"] += 1
        if calls["meta"] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)   # killed after this case's arrays, before its metadata
        real_json(path, obj)
    def write_npy(path, arr):
        if calls["meta"] == int(sys.argv[3]) - 1 and path.name.endswith("_seg.npy"):
            tmp = path.with_name("." + path.name + ".x.tmp")
            tmp.write_bytes(b"\\x93NUMPY half")        # a half-written temporary, as a kill leaves it
        real_npy(path, arr)
    pipeline.write_json, pipeline.write_npy = write_json, write_npy
    api.plan_and_preprocess(sys.argv[1], root=sys.argv[2], processes=1, configurations=["3d_fullres"])
""")


def test_killed_preprocessing_resumes_without_redoing_finished_cases(tiny_3d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(tiny_3d), str(root), "3"], capture_output=True)
    assert proc.returncode == -9
    folder = root / "preprocessed" / tiny_3d.name / "3d_fullres"
    finished = sorted(p.stem for p in folder.glob("case_*.json"))
    assert finished == ["case_000", "case_001"]
    assert list(folder.glob(".*.tmp"))  # the kill left a temporary behind
    plans = load_plans(root / "preprocessed" / tiny_3d.name / "plans.json")
    from autounet.io.verify import check_layout
    from autounet.preprocess.pipeline import preprocess_segmentation as preprocess_dataset
    from autounet.workspace import resolve_dataset

    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("case_00[01]*")}
    spec, cases = check_layout(tiny_3d)
    stats = preprocess_dataset(spec, cases, plans, resolve_dataset(tiny_3d, root), ["3d_fullres"], processes=1)
    assert stats == {"done": 4, "skipped": 2}
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("case_00[01]*")} == mtimes  # not redone
    assert not list(folder.glob(".*.tmp"))
    for i in range(6):
        assert np.load(folder / f"case_{i:03d}_data.npy").shape[0] == 2
    # and a full re-run through the API now has nothing to do
    api.plan_and_preprocess(tiny_3d, root=root, processes=1, configurations=["3d_fullres"])
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("case_00[01]*")} == mtimes


def test_changed_plan_redoes_cases_and_force_redoes_everything(tiny_2d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    folder = root / "preprocessed" / tiny_2d.name / "2d"
    meta = folder / "case_000.json"
    first = meta.stat().st_mtime_ns
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    assert meta.stat().st_mtime_ns == first
    d = read_json(meta)
    d["preprocessing_hash"] = "stale"
    meta.write_text(json.dumps(d))
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    assert read_json(meta)["preprocessing_hash"] != "stale"
    second = meta.stat().st_mtime_ns
    api.plan_and_preprocess(tiny_2d, root=root, processes=1, force=True)
    assert meta.stat().st_mtime_ns != second


def test_existing_splits_are_never_silently_changed(tiny_2d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    custom = [{"train": [f"case_{i:03d}" for i in range(1, 6)], "val": ["case_000"]},
              {"train": [f"case_{i:03d}" for i in range(0, 5)], "val": ["case_005"]}]
    user = tmp_path / "my_splits.json"
    user.write_text(json.dumps(custom))
    api.plan_and_preprocess(tiny_2d, root=root, processes=1, splits_file=user, preprocess=False)
    splits_path = root / "preprocessed" / tiny_2d.name / "splits.json"
    assert read_json(splits_path) == custom
    api.plan_and_preprocess(tiny_2d, root=root, processes=1, seed=5, preprocess=False)
    assert read_json(splits_path) == custom
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"train": ["nope"], "val": ["case_000"]}]))
    with pytest.raises(Exception, match="nope"):
        api.plan_and_preprocess(tiny_2d, root=root, processes=1, splits_file=bad, preprocess=False)
    assert read_json(splits_path) == custom


def test_splits_are_seeded():
    from autounet.autoplan.splits import make_splits

    ids = [f"c{i}" for i in range(23)]
    assert make_splits(ids, seed=1) == make_splits(list(reversed(ids)), seed=1)
    assert make_splits(ids, seed=1) != make_splits(ids, seed=2)
    folds = make_splits(ids, seed=1)
    assert sorted(c for f in folds for c in f["val"]) == sorted(ids)
    assert all(len(f["val"]) in (4, 5) for f in folds)
