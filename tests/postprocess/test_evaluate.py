"""evaluate_folders on tiny NIfTI and PNG files written into tmp_path."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from skimage import io as skio

from autounet.postprocess.evaluate import EvaluationError, evaluate_folders
from autounet.postprocess.metrics import METRICS

SPACING = (3.0, 0.8, 0.5)  # array order (z, y, x)


def write_nifti(path: Path, seg: np.ndarray, spacing=SPACING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(seg.astype(np.uint8))
    img.SetSpacing(tuple(reversed(spacing)))  # SimpleITK wants (x, y, z)
    sitk.WriteImage(img, str(path))


def box_case(z_shift: int = 0, second_label: bool = True) -> np.ndarray:
    seg = np.zeros((8, 12, 12), np.uint8)
    seg[2 + z_shift:5 + z_shift, 2:7, 2:7] = 1
    if second_label:
        seg[2:4, 8:11, 8:11] = 2
    return seg


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three cases: a perfect one, one shifted by a voxel along z, one missing label 2 everywhere."""
    ref, pred = tmp_path / "labelsTs", tmp_path / "pred"
    write_nifti(ref / "case_a.nii.gz", box_case())
    write_nifti(pred / "case_a.nii.gz", box_case())
    write_nifti(ref / "case_b.nii.gz", box_case())
    write_nifti(pred / "case_b.nii.gz", box_case(z_shift=1))
    write_nifti(ref / "case_c.nii.gz", box_case(second_label=False))
    write_nifti(pred / "case_c.nii.gz", box_case(second_label=False))
    return ref, pred


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_nifti_folders_summary_and_csv(folders):
    ref, pred = folders
    summary = evaluate_folders(ref, pred)
    on_disk = json.loads((pred / "summary.json").read_text())
    assert on_disk["classes"] == [1, 2] and on_disk["nsd_tolerance_mm"] == 1.0
    assert [c["case_id"] for c in on_disk["cases"]] == ["case_a", "case_b", "case_c"]
    a, b, c = (case["metrics"] for case in on_disk["cases"])
    assert a["1"]["dice"] == 1 and a["1"]["hd95"] == 0
    assert b["1"]["tp"] == 2 * 25 and b["1"]["fp"] == b["1"]["fn"] == 25
    assert b["1"]["hd95"] == pytest.approx(3.0)  # one voxel along z is 3 mm
    assert math.isnan(c["2"]["dice"])  # label 2 absent from case_c: skipped by the means
    assert on_disk["mean"]["2"]["dice"] == 1
    assert on_disk["mean"]["1"]["dice"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert on_disk["foreground_mean"]["dice"] == pytest.approx(((1 + 2 / 3 + 1) / 3 + 1) / 2)
    assert summary["mean"] == on_disk["mean"]
    # lesion-wise: each case's class 1 is one lesion, found; its volume in mm^3 from the spacing
    assert a["1"]["n_ref_lesions"] == 1 and a["1"]["lesion_f1"] == 1 and a["1"]["lesions"][0]["detected"]
    assert a["1"]["lesions"][0]["volume"] == pytest.approx(a["1"]["n_ref"] * math.prod(SPACING))
    assert on_disk["mean"]["1"]["lesion_tpr"] == 1 and math.isnan(c["2"]["lesion_f1"])

    rows = read_csv(pred / "metrics.csv")
    assert rows[0] == ["case_id"] + [f"{c}_{m}" for c in ("1", "2") for m in METRICS]
    assert [r[0] for r in rows[1:]] == ["case_a", "case_b", "case_c"]
    by_column = dict(zip(rows[0], rows[2]))
    assert float(by_column["1_hd95"]) == pytest.approx(3.0) and by_column["1_tp"] == "50"
    assert dict(zip(rows[0], rows[3]))["2_dice"] == "nan"


def test_explicit_classes_regions_output_folder_and_processes(folders, tmp_path):
    ref, pred = folders
    out = tmp_path / "evaluation"
    summary = evaluate_folders(ref, pred, classes=[1, (1, 2)], nsd_tolerance=3.5, processes=2, output=out)
    assert summary["classes"] == [1, [1, 2]] and summary["nsd_tolerance_mm"] == 3.5
    assert summary["cases"][1]["metrics"]["1"]["nsd"] == 1  # a 3 mm shift is within 3.5 mm
    assert read_csv(out / "metrics.csv")[0][1 + len(METRICS)] == "1,2_dice"
    assert not (pred / "summary.json").exists()


def test_dataset_json_gives_regions_and_ignore(folders):
    ref, pred = folders
    labels = {"background": 0, "organ": [1, 2], "small": 2, "ignore": 3}
    (ref.parent / "dataset.json").write_text(json.dumps({"labels": labels}))
    seg = box_case()
    seg[6:8] = 3  # ignored in the reference; the prediction says 1 there
    write_nifti(ref / "case_a.nii.gz", seg)
    write_nifti(pred / "case_a.nii.gz", np.where(seg == 3, 1, seg))
    summary = evaluate_folders(ref, pred)
    assert summary["classes"] == [[1, 2], [2]] and summary["ignore_label"] == 3
    assert summary["cases"][0]["metrics"]["1,2"]["dice"] == 1


def test_png_pair(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    seg = np.zeros((16, 16), np.uint8)
    seg[4:10, 4:10] = 1
    skio.imsave(str(ref / "img.png"), seg, check_contrast=False)
    skio.imsave(str(pred / "img.png"), np.roll(seg, 2, axis=1), check_contrast=False)
    summary = evaluate_folders(ref, pred)
    m = summary["cases"][0]["metrics"]["1"]
    assert m["dice"] == pytest.approx(2 * 24 / 72)
    assert m["hd95"] == pytest.approx(2.0)  # pixels, not the flat axis' placeholder spacing
    assert read_csv(pred / "metrics.csv")[1][0] == "img"


def test_missing_prediction_is_an_error_naming_it(folders):
    ref, pred = folders
    (pred / "case_b.nii.gz").unlink()
    write_nifti(pred / "case_c.nii", box_case())
    (pred / "case_c.nii.gz").unlink()
    with pytest.raises(EvaluationError) as info:
        evaluate_folders(ref, pred)
    msg = str(info.value)
    assert "case_b.nii.gz" in msg and "case_c.nii.gz" in msg and "ending differs" in msg
    assert not (pred / "summary.json").exists()


def test_extra_prediction_is_ignored_with_a_warning(folders, caplog):
    ref, pred = folders
    write_nifti(pred / "stray.nii.gz", box_case())
    with caplog.at_level(logging.WARNING, logger="autounet.postprocess"):
        summary = evaluate_folders(ref, pred)
    assert "stray.nii.gz" in caplog.text
    assert [c["case_id"] for c in summary["cases"]] == ["case_a", "case_b", "case_c"]


def test_shape_mismatch_names_the_file(folders):
    ref, pred = folders
    write_nifti(pred / "case_b.nii.gz", np.zeros((8, 12, 13), np.uint8))
    with pytest.raises(EvaluationError, match="case_b.nii.gz.*shape"):
        evaluate_folders(ref, pred)
