"""Metrics per case and class on hand-made arrays with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autounet.postprocess.metrics import (
    METRICS, case_metrics, dice_per_class, foreground_mean, image_diagonal, mean_per_class, summarize,
)

SPACING = (2.0, 0.6, 0.7)  # anisotropic, array order (z, y, x)


def ball(shape, spacing, center_mm, radius_mm) -> np.ndarray:
    """A sphere in physical space (an ellipsoid in voxels when the spacing is anisotropic)."""
    grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, center_mm)) <= radius_mm ** 2


def test_overlapping_boxes_counts_dice_iou():
    pred, ref = np.zeros((10, 8, 8), np.int8), np.zeros((10, 8, 8), np.int8)
    pred[2:6, 2:6, 2:6] = 1  # 64 voxels
    ref[4:8, 2:6, 2:6] = 1  # 64 voxels, overlapping on z 4..5: 2 * 4 * 4 = 32
    m = case_metrics(pred, ref, [1], (1.0, 1.0, 1.0))["1"]
    assert (m["tp"], m["fp"], m["fn"], m["n_pred"], m["n_ref"]) == (32, 32, 32, 64, 64)
    assert m["dice"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(1 / 3)
    assert list(m) == list(METRICS) + ["lesions"]  # the scalars in order, then the per-lesion list
    assert m["hd95"] == pytest.approx(2.0)  # the top and bottom faces are 2 voxels apart


def test_identical_masks_are_perfect():
    seg = ball((20, 40, 40), SPACING, (20, 12, 14), 8).astype(np.int8)
    m = case_metrics(seg, seg.copy(), [1], SPACING)["1"]
    assert m["dice"] == 1 and m["iou"] == 1 and m["hd95"] == 0 and m["nsd"] == 1
    assert m["fp"] == m["fn"] == 0


@pytest.mark.parametrize("axis, k", [(0, 2), (1, 3), (2, 3)])
def test_hd95_of_shifted_spheres_is_the_physical_shift(axis, k):
    shape = (20, 60, 60)
    ref = ball(shape, SPACING, (20, 18, 21), 10).astype(np.int8)
    pred = np.roll(ref, k, axis=axis)
    m = case_metrics(pred, ref, [1], SPACING)["1"]
    shift_mm = k * SPACING[axis]
    assert abs(m["hd95"] - shift_mm) <= SPACING[axis]


def test_nsd_tolerance_larger_than_shift_is_one_smaller_is_less():
    shape = (20, 60, 60)
    ref = ball(shape, SPACING, (20, 18, 21), 10).astype(np.int8)
    pred = np.roll(ref, 3, axis=2)  # 3 * 0.7 = 2.1 mm along x
    assert case_metrics(pred, ref, [1], SPACING, nsd_tolerance=2.2)["1"]["nsd"] == 1
    small = case_metrics(pred, ref, [1], SPACING, nsd_tolerance=0.5)["1"]["nsd"]
    assert 0 < small < 1
    assert case_metrics(pred, ref, [1], SPACING)["1"]["nsd"] > small  # default 1 mm lies in between


def test_flat_axis_of_2d_images_is_ignored():
    """A 2D image read as (1, Y, X) gets a huge spacing on the flat axis; it must not count."""
    ref = np.zeros((1, 20, 20), np.int8)
    ref[0, 5:12, 5:12] = 1
    pred = np.roll(ref, 2, axis=2)
    m = case_metrics(pred, ref, [1], (999.0, 1.0, 1.0))["1"]
    assert m["hd95"] == pytest.approx(2.0)
    assert 0 < m["nsd"] < 1


def test_region_class_is_the_union_of_its_labels():
    ref = np.zeros((4, 10, 10), np.int8)
    ref[:, 2:5, 2:8], ref[:, 5:8, 2:8] = 1, 2
    pred = np.where(ref == 1, 2, np.where(ref == 2, 1, 0)).astype(np.int8)  # labels swapped
    m = case_metrics(pred, ref, [1, 2, (1, 2)], (1.0, 1.0, 1.0))
    assert m["1"]["dice"] == 0 and m["2"]["dice"] == 0
    assert m["1,2"]["dice"] == 1 and m["1,2"]["hd95"] == 0 and m["1,2"]["nsd"] == 1


def test_ignore_label_voxels_are_excluded():
    ref = np.zeros((4, 10, 10), np.int8)
    ref[:, 2:6, 2:6] = 1
    ref[:, 6:9, 2:6] = 3  # ignore
    pred = np.zeros_like(ref)
    pred[:, 2:9, 2:6] = 1  # also covers the ignored voxels
    with_ignore = case_metrics(pred, ref, [1], (1.0, 1.0, 1.0), ignore_label=3)["1"]
    assert with_ignore["dice"] == 1 and with_ignore["fp"] == 0
    assert with_ignore["hd95"] == 0 and with_ignore["nsd"] == 1
    without = case_metrics(pred, ref, [1], (1.0, 1.0, 1.0))["1"]
    assert without["fp"] == 4 * 3 * 4 and without["dice"] < 1


def test_nan_rules():
    shape, spacing = (5, 10, 12), (3.0, 1.0, 0.5)
    empty, blob = np.zeros(shape, np.int8), np.zeros(shape, np.int8)
    blob[1:3, 2:5, 2:5] = 1
    diagonal = math.sqrt((4 * 3.0) ** 2 + 9.0 ** 2 + (11 * 0.5) ** 2)
    assert image_diagonal(shape, spacing) == pytest.approx(diagonal)

    absent = case_metrics(empty, empty, [1], spacing)["1"]  # nothing to find, nothing found
    assert all(math.isnan(absent[k]) for k in ("dice", "iou", "hd95", "nsd"))
    assert absent["tp"] == absent["fp"] == absent["fn"] == 0

    for pred, ref in ((blob, empty), (empty, blob)):  # hallucinated, then missed
        m = case_metrics(pred, ref, [1], spacing)["1"]
        assert m["dice"] == 0 and m["iou"] == 0 and m["nsd"] == 0
        assert m["hd95"] == pytest.approx(diagonal)
    assert case_metrics(empty, blob, [1], spacing)["1"]["fn"] == 18


def test_summarize_skips_nan():
    nan = float("nan")
    case_a = {"1": {"dice": 0.5, "hd95": 2.0, "tp": 4}, "2": {"dice": nan, "hd95": nan, "tp": 0}}
    case_b = {"1": {"dice": 1.0, "hd95": nan, "tp": 6}, "2": {"dice": nan, "hd95": nan, "tp": 0}}
    s = summarize([case_a, case_b])
    assert s["mean"]["1"] == {"dice": 0.75, "tp": 5.0, "hd95": 2.0}
    assert math.isnan(s["mean"]["2"]["dice"]) and s["mean"]["2"]["tp"] == 0
    assert s["foreground_mean"]["dice"] == 0.75  # class 2 is NaN everywhere: skipped
    assert s["foreground_mean"]["tp"] == 2.5
    assert summarize([]) == {"mean": {}, "foreground_mean": {}}


def test_dice_only_helpers_agree_with_case_metrics():
    ref = ball((10, 30, 30), SPACING, (10, 9, 10), 6).astype(np.int8)
    pred = np.roll(ref, 1, axis=1)
    legacy = dice_per_class(pred, ref, [1, 2])
    full = case_metrics(pred, ref, [1, 2], SPACING)
    assert legacy["1"]["dice"] == pytest.approx(full["1"]["dice"])
    assert {k: legacy["1"][k] for k in ("tp", "fp", "fn")} == {k: full["1"][k] for k in ("tp", "fp", "fn")}
    means = mean_per_class([legacy, legacy])
    assert math.isnan(means["2"]) and foreground_mean(means) == pytest.approx(legacy["1"]["dice"])


def test_shape_and_spacing_mismatch_raise():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)), [1], (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), [1], (1, 1))
