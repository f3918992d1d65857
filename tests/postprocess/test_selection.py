"""Choosing the postprocessing on hand-made predictions; saving, loading and applying it to folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.postprocess.components import PostprocessingRules, apply_rules
from autounet.postprocess.metrics import dice_per_class
from autounet.postprocess.selection import (
    apply_postprocessing_to_folder,
    case_statistics,
    determine_postprocessing,
    determine_postprocessing_from_folders,
    load_rules,
    save_rules,
)

SHAPE = (6, 16, 16)


def blank() -> np.ndarray:
    return np.zeros(SHAPE, np.uint8)


def case_with_spurious_blob() -> tuple[np.ndarray, np.ndarray]:
    ref = blank()
    ref[1:4, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[4:6, 12:15, 12:15] = 1  # far away, absent from the reference
    return pred, ref


def case_with_two_objects() -> tuple[np.ndarray, np.ndarray]:
    ref = blank()
    ref[1:4, 2:6, 2:6] = 1
    ref[1:4, 11:14, 11:14] = 1  # a genuine second object
    return ref.copy(), ref


def test_spurious_blob_is_removed():
    pred_a, ref_a = case_with_spurious_blob()
    ref_b = ref_a.copy()  # second case: predicted perfectly, nothing to remove
    rules, report = determine_postprocessing([pred_a, ref_b.copy()], [ref_a, ref_b], [1])
    # with one class, the foreground rule already removes it; the class rule then changes nothing
    assert rules == PostprocessingRules(keep_largest_foreground=True)
    fg = report["steps"][0]
    assert fg["rule"] == "keep_largest_foreground" and fg["accepted"]
    assert fg["before"]["dice_per_class"]["1"] < fg["after"]["dice_per_class"]["1"] == 1.0
    assert report["steps"][1]["accepted"] is False  # not strictly better on the step-1 output
    assert report["final"]["foreground_mean"] == 1.0
    assert np.array_equal(apply_rules(pred_a, rules), ref_a)


def test_spurious_blob_of_one_class_is_removed_by_the_class_rule():
    pred, ref = case_with_spurious_blob()
    ref[0, 15, 0] = 2  # class 2 lies far from class 1 and is right: the foreground rule
    pred[0, 15, 0] = 2  # would delete it, so only the class-1 rule is accepted
    rules, report = determine_postprocessing([pred], [ref], [1, 2])
    assert rules == PostprocessingRules(keep_largest_foreground=False, keep_largest_per_class=(1,))
    assert [s["accepted"] for s in report["steps"]] == [False, True, False]
    assert np.array_equal(apply_rules(pred, rules), ref)


def test_genuine_second_object_is_kept():
    pred, ref = case_with_two_objects()
    rules, report = determine_postprocessing([pred], [ref], [1])
    assert rules.is_identity
    assert [s["accepted"] for s in report["steps"]] == [False, False]
    assert report["steps"][0]["after"]["dice_per_class"]["1"] < 1.0  # removing would lower Dice
    assert report["final"]["dice_per_class"] == {"1": 1.0}


def foreground_raises_mean_but_lowers_class_2() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Case A: a spurious class-1 blob (the foreground rule helps class 1 a lot).
    Case B: class 2 has a genuine small part far from everything (the foreground rule hurts class 2 a little)."""
    ref_a = blank()
    ref_a[0:3, 0:3, 0:3] = 1
    ref_a[0:3, 3:5, 0:3] = 2  # touches class 1
    pred_a = ref_a.copy()
    pred_a[3:6, 13:16, 13:16] = 1  # spurious, 27 voxels
    ref_b = blank()
    ref_b[0:3, 0:3, 0:3] = 1
    ref_b[0:2, 3:5, 0:2] = 2  # touches class 1, 8 voxels
    ref_b[5, 15, 15] = 2  # genuine lonely part, 1 voxel
    return [pred_a, ref_b.copy()], [ref_a, ref_b]


def test_foreground_rule_rejected_when_it_lowers_one_class():
    preds, refs = foreground_raises_mean_but_lowers_class_2()
    rules, report = determine_postprocessing(preds, refs, [1, 2])
    fg = report["steps"][0]
    assert fg["after"]["foreground_mean"] > fg["before"]["foreground_mean"]  # the mean rises...
    assert fg["after"]["dice_per_class"]["2"] < fg["before"]["dice_per_class"]["2"]  # ...but class 2 loses
    assert not fg["accepted"]
    # per class: class 1's rule helps class 1 and is accepted, class 2's would hurt class 2
    assert rules == PostprocessingRules(keep_largest_foreground=False, keep_largest_per_class=(1,))
    step1, step2 = report["steps"][1:]
    assert step1["class"] == 1 and step1["accepted"] and step1["before"] == fg["before"]
    assert step2["class"] == 2 and not step2["accepted"]
    assert step1["after"]["dice_per_class"]["2"] == step1["before"]["dice_per_class"]["2"]
    assert report["final"]["dice_per_class"] == {"1": 1.0, "2": 1.0}
    json.dumps(report)  # serialisable


def test_per_class_rules_start_from_the_foreground_output():
    """After the foreground rule, a class that is one component already gains nothing."""
    ref = blank()
    ref[0:3, 0:4, 0:4] = 1
    ref[0:3, 4:6, 0:4] = 2
    pred = ref.copy()
    pred[5, 14:16, 14:16] = 1  # spurious class 1
    pred[5, 0, 15] = 2  # spurious class 2
    rules, report = determine_postprocessing([pred], [ref], [1, 2])
    assert rules == PostprocessingRules(keep_largest_foreground=True)
    assert all(s["before"] == report["steps"][0]["after"] for s in report["steps"][1:])


def test_region_classes_and_ignore_label():
    ref = blank()
    ref[0:3, 0:4, 0:4] = 1
    ref[0:3, 4:6, 0:4] = 2
    ref[5, 10:16, :] = 9  # ignore label
    pred = ref.copy()
    pred[5, 10:16, :] = 0
    pred[5, 12, 3] = 2  # spurious, but under the ignore label: counts for nothing
    pred[3, 14, 14] = 2  # spurious, counted
    classes = [(1, 2), 2]
    rules, report = determine_postprocessing([pred], [ref], classes, ignore_label=9)
    assert report["classes"] == [[1, 2], 2]
    assert rules.keep_largest_foreground  # removes both spurious voxels, the ignored one too
    assert report["final"]["dice_per_class"] == {"1,2": 1.0, "2": 1.0}


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ref = (rng.random((5, 9, 9)) < 0.15) * rng.integers(1, 4, (5, 9, 9))
    pred = (rng.random((5, 9, 9)) < 0.15) * rng.integers(1, 4, (5, 9, 9))
    ref[rng.random(ref.shape) < 0.05] = 7  # ignore label
    return pred.astype(np.uint8), ref.astype(np.uint8)


@pytest.mark.parametrize("seed", range(5))
def test_case_statistics_match_direct_evaluation(seed: int):
    """The subtract-the-removed-voxels shortcut gives exactly what evaluating each candidate gives."""
    pred, ref = random_case(np.random.default_rng(seed))
    classes = [1, 2, 3, (1, 2), (2, 3)]
    stats = case_statistics(pred, ref, classes, ignore_label=7)
    assert stats["as_is"] == dice_per_class(pred, ref, classes, 7)
    fg_rule = PostprocessingRules(keep_largest_foreground=True)
    pred_fg = apply_rules(pred, fg_rule)
    assert stats["largest_foreground"] == dice_per_class(pred_fg, ref, classes, 7)
    for base_key, base_pred in [("as_is", pred), ("largest_foreground", pred_fg)]:
        base = stats[base_key]
        for cls in classes:
            name = ",".join(map(str, cls)) if isinstance(cls, tuple) else str(cls)
            candidate = apply_rules(base_pred, PostprocessingRules(keep_largest_per_class=(cls,)))
            merged = {**base, **stats["largest_per_class"][base_key][name]}
            assert merged == dice_per_class(candidate, ref, classes, 7), (base_key, name)


def test_bad_input_is_reported():
    pred, ref = case_with_spurious_blob()
    with pytest.raises(ValueError, match="references"):
        determine_postprocessing([pred], [], [1])
    with pytest.raises(ValueError, match="no cases"):
        determine_postprocessing([], [], [1])
    with pytest.raises(ValueError, match="shape"):
        determine_postprocessing([pred], [ref[:-1]], [1])
    with pytest.raises(ValueError, match="more than once"):
        determine_postprocessing([pred], [ref], [1, (1,)])
    with pytest.raises(ValueError, match="background"):
        determine_postprocessing([pred], [ref], [0, 1])


def test_save_and_load_rules(tmp_path: Path):
    preds, refs = foreground_raises_mean_but_lowers_class_2()
    rules, report = determine_postprocessing(preds, refs, [1, (1, 2)])
    path = tmp_path / "results" / "postprocessing.json"
    save_rules(path, rules, report)
    assert load_rules(path) == rules
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {"rules", "report"} and on_disk["report"]["classes"] == [1, [1, 2]]
    assert not list(path.parent.glob(".*tmp"))  # written atomically, no temporary left
    (tmp_path / "other.json").write_text('{"something": 1}')
    with pytest.raises(ValueError, match="other.json"):
        load_rules(tmp_path / "other.json")


# ---------------------------------------------------------------------------------------------
# folders of NIfTI files


def write_nifti(path: Path, seg: np.ndarray) -> None:
    img = sitk.GetImageFromArray(seg)
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin((10.0, -5.0, 3.0))
    sitk.WriteImage(img, str(path), useCompression=True)


@pytest.fixture
def cv_folders(tmp_path: Path) -> tuple[Path, Path, list[np.ndarray], list[np.ndarray]]:
    preds, refs = foreground_raises_mean_but_lowers_class_2()
    pred_c, ref_c = case_with_two_objects()
    preds.append(pred_c)
    refs.append(ref_c)
    pred_dir, ref_dir = tmp_path / "validation", tmp_path / "labelsTr"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for i, (p, r) in enumerate(zip(preds, refs)):
        write_nifti(pred_dir / f"case_{i:03d}.nii.gz", p)
        write_nifti(ref_dir / f"case_{i:03d}.nii.gz", r)
    write_nifti(ref_dir / "case_999.nii.gz", refs[0])  # a reference without prediction: ignored
    (pred_dir / "summary.json").write_text("{}")  # not a segmentation: ignored
    np.savez(pred_dir / "case_000.npz", probabilities=np.zeros(3))  # neither
    return pred_dir, ref_dir, preds, refs


@pytest.mark.parametrize("processes", [1, 2])
def test_folders_give_the_same_decision_as_arrays(cv_folders, processes: int):
    pred_dir, ref_dir, preds, refs = cv_folders
    expected_rules, expected_report = determine_postprocessing(preds, refs, [1, 2])
    rules, report = determine_postprocessing_from_folders(pred_dir, ref_dir, [1, 2], processes=processes)
    assert rules == expected_rules == PostprocessingRules(keep_largest_per_class=(1,))
    assert report["cases"] == ["case_000", "case_001", "case_002"]
    assert report["steps"] == expected_report["steps"] and report["final"] == expected_report["final"]


def test_folder_pairing_errors(cv_folders, tmp_path: Path):
    pred_dir, ref_dir, _, _ = cv_folders
    (ref_dir / "case_001.nii.gz").unlink()
    with pytest.raises(ValueError, match="case_001"):
        determine_postprocessing_from_folders(pred_dir, ref_dir, [1, 2])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no segmentation files"):
        determine_postprocessing_from_folders(empty, ref_dir, [1, 2])
    with pytest.raises(ValueError, match="not found"):
        determine_postprocessing_from_folders(tmp_path / "missing", ref_dir, [1, 2])


def test_apply_postprocessing_to_folder_keeps_geometry(cv_folders, tmp_path: Path):
    pred_dir, _, preds, _ = cv_folders
    rules = PostprocessingRules(keep_largest_per_class=(1,))
    out_dir = tmp_path / "postprocessed"
    written = apply_postprocessing_to_folder(pred_dir, out_dir, rules, processes=1)
    assert [p.name for p in written] == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    assert sorted(p.name for p in out_dir.iterdir()) == [p.name for p in written]
    for path, pred in zip(written, preds):
        img = sitk.ReadImage(str(path))
        assert img.GetSpacing() == pytest.approx((0.8, 0.7, 2.5))
        assert img.GetOrigin() == pytest.approx((10.0, -5.0, 3.0))
        assert np.array_equal(sitk.GetArrayFromImage(img), apply_rules(pred, rules))
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(written[0]))) == 1).sum() == 27  # spurious blob gone
