"""Lesion-wise metrics against hand-counted cases: detected, missed and false lesions, merged
lesions, empty references and predictions, volumes in physical units, and the figures in
evaluate's files and the cross-validation's per-case records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autounet.postprocess.lesions import LESION_METRICS, lesion_metrics
from autounet.postprocess.metrics import METRICS, case_metrics, case_scores, summarize


def _masks(shape=(1, 10, 10)):
    return np.zeros(shape, bool), np.zeros(shape, bool)


def test_one_lesion_found_one_missed_one_false():
    pred, ref = _masks()
    ref[0, 1:3, 1:3] = True          # lesion A: 4 voxels, found by a 6-voxel prediction
    ref[0, 6:9, 6:9] = True          # lesion B: 9 voxels, missed
    pred[0, 1:3, 1:4] = True
    pred[0, 5, 0] = True             # a false lesion, touching no reference lesion
    m = lesion_metrics(pred, ref, voxel_volume=2.0)
    assert (m["n_ref_lesions"], m["n_pred_lesions"], m["lesion_tp"], m["lesion_fn"], m["lesion_fp"]) == (2, 2, 1, 1, 1)
    assert m["lesion_tpr"] == 0.5 and m["lesion_fpr"] == 0.5 and m["lesion_f1"] == 0.5
    assert m["lesions"] == [{"volume": 8.0, "dice": 0.8, "detected": True},   # 2*4 / (4+6)
                            {"volume": 18.0, "dice": 0.0, "detected": False}]
    assert m["lesion_dice"] == pytest.approx(0.4)


def test_one_prediction_over_two_lesions_detects_both():
    pred, ref = _masks()
    ref[0, 2, 1:3] = ref[0, 2, 5:7] = True   # two 2-voxel lesions
    pred[0, 2, 0:8] = True                    # one 8-voxel prediction across both
    m = lesion_metrics(pred, ref)
    assert (m["lesion_tp"], m["lesion_fn"], m["lesion_fp"], m["lesion_f1"]) == (2, 0, 0, 1.0)
    assert [x["dice"] for x in m["lesions"]] == [pytest.approx(0.4)] * 2  # 2*2 / (2+8): the merge costs Dice


@pytest.mark.parametrize("case", ["both empty", "reference empty", "prediction empty"])
def test_empty_reference_or_prediction(case):
    pred, ref = _masks()
    if case != "reference empty":
        ref[0, 1, 1] = ref[0, 5, 5] = ref[0, 8, 1] = True
    if case != "prediction empty":
        pred[0, 0, 8] = pred[0, 8, 8] = True
    if case == "both empty":
        pred[:], ref[:] = False, False
    m = lesion_metrics(pred, ref)
    if case == "both empty":
        assert all(m[k] == 0 for k in ("n_ref_lesions", "n_pred_lesions", "lesion_tp", "lesion_fn", "lesion_fp"))
        assert all(math.isnan(m[k]) for k in ("lesion_tpr", "lesion_fpr", "lesion_f1", "lesion_dice"))
        assert m["lesions"] == []
    elif case == "reference empty":   # everything predicted is false; nothing to find
        assert (m["lesion_fp"], m["lesion_fpr"], m["lesion_f1"]) == (2, 1.0, 0.0)
        assert math.isnan(m["lesion_tpr"]) and math.isnan(m["lesion_dice"])
    else:                             # everything missed; nothing predicted
        assert (m["lesion_fn"], m["lesion_tpr"], m["lesion_f1"], m["lesion_dice"]) == (3, 0.0, 0.0, 0.0)
        assert math.isnan(m["lesion_fpr"]) and not any(x["detected"] for x in m["lesions"])


def test_lesions_are_components_with_full_connectivity():
    pred, ref = _masks((3, 4, 4))
    ref[0, 0, 0] = ref[1, 1, 1] = True   # corner neighbours: one lesion
    ref[2, 3, 3] = True                  # not touching: a second one
    pred[1, 1, 1] = True
    m = lesion_metrics(pred, ref)
    assert (m["n_ref_lesions"], m["lesion_tp"], m["lesion_fn"]) == (2, 1, 1)


def test_case_metrics_give_volumes_in_physical_units_and_summaries_average_the_rates():
    pred, ref = _masks((2, 6, 6))
    ref[:, 1:3, 1:3] = True  # 8 voxels of 2 x 0.5 x 0.5 = 0.5 units each
    pred[:, 1:3, 1:3] = True
    m = case_metrics(pred.astype(np.uint8), ref.astype(np.uint8), [1], (2.0, 0.5, 0.5))["1"]
    assert m["lesions"] == [{"volume": 4.0, "dice": 1.0, "detected": True}]
    assert all(k in METRICS for k in LESION_METRICS)
    empty = case_metrics(np.zeros((2, 6, 6), np.uint8), ref.astype(np.uint8), [1], (2.0, 0.5, 0.5))["1"]
    means = summarize([{"1": m}, {"1": empty}])["mean"]["1"]
    assert means["lesion_tpr"] == 0.5 and means["lesion_f1"] == 0.5 and means["n_ref_lesions"] == 1


def test_the_cross_validation_records_lesion_figures_without_the_ignore_label():
    pred = np.zeros((1, 8, 8), np.uint8)
    ref = np.zeros((1, 8, 8), np.uint8)
    ref[0, 1:3, 1:3] = 1
    ref[0, 5:7, 5:7] = 9       # ignored: not a lesion of class 1, and predictions there do not count
    pred[0, 5:7, 5:7] = 1
    pred[0, 1, 1] = 1
    m = case_scores(pred, ref, [1], ignore_label=9)["1"]
    assert (m["n_ref_lesions"], m["n_pred_lesions"], m["lesion_fp"], m["lesion_f1"]) == (1, 1, 0, 1.0)
    assert "lesions" not in m and m["dice"] == pytest.approx(2 * 1 / (1 + 4))
