"""Instance metrics against hand-computed cases: PQ, its SQ and DQ, AJI, object F1 and per-object
Dice, with empty references and predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autounet.postprocess.instance_metrics import instance_metrics


def _boxes():
    """Reference: A (4x4 = 16 px) and B (2x2 = 4 px). Prediction: A shifted by one column (IoU
    12/20 = 0.6, a match), B missed, a false object C (1 px). Ids are not consecutive on purpose."""
    ref = np.zeros((1, 10, 10), np.int32)
    pred = np.zeros_like(ref)
    ref[0, 0:4, 0:4] = 7
    ref[0, 6:8, 6:8] = 3
    pred[0, 0:4, 1:5] = 5
    pred[0, 9, 0] = 9
    return pred, ref


def test_panoptic_quality_aji_f1_and_dice_by_hand():
    pred, ref = _boxes()
    m = instance_metrics(pred, ref)
    assert (m["n_ref_objects"], m["n_pred_objects"], m["object_tp"], m["object_fp"], m["object_fn"]) == (2, 2, 1, 1, 1)
    assert m["sq"] == pytest.approx(0.6)
    assert m["dq"] == pytest.approx(1 / (1 + 0.5 + 0.5)) and m["object_f1"] == pytest.approx(0.5)
    assert m["pq"] == pytest.approx(0.3)
    # AJI: A pairs with its shift (12 / 20), B pairs with nothing (+4 to the union), C is unused (+1)
    assert m["aji"] == pytest.approx(12 / (20 + 4 + 1))
    # per-object Dice: A 2*12/(16+16) = 0.75, B 0
    assert m["instance_dice"] == pytest.approx(0.375)


def test_a_merge_of_two_touching_objects_is_no_match():
    ref = np.zeros((1, 4, 8), np.int32)
    ref[0, :, :4], ref[0, :, 4:] = 1, 2
    merged = (ref > 0).astype(np.int32)
    m = instance_metrics(merged, ref)
    assert (m["object_tp"], m["object_fp"], m["object_fn"], m["pq"]) == (0, 1, 2, 0.0)  # IoU exactly 0.5: no match
    # AJI (Kumar et al.): both objects pair with the merge, its area counted in each union: 32 / 64
    assert math.isnan(m["sq"]) and m["aji"] == pytest.approx(32 / 64)
    assert instance_metrics(ref, ref)["pq"] == 1.0 and instance_metrics(ref, ref)["aji"] == 1.0


@pytest.mark.parametrize("case", ["both empty", "reference empty", "prediction empty"])
def test_empty_reference_or_prediction(case):
    pred, ref = _boxes()
    if case != "reference empty" and case != "both empty":
        pred[:] = 0
    if case != "prediction empty":
        ref[:] = 0
    if case == "both empty":
        pred[:] = 0
    m = instance_metrics(pred, ref)
    if case == "both empty":
        assert all(math.isnan(m[k]) for k in ("pq", "sq", "dq", "object_f1", "aji", "instance_dice"))
        assert m["n_ref_objects"] == m["n_pred_objects"] == 0
    elif case == "reference empty":
        assert (m["pq"], m["dq"], m["object_f1"], m["aji"], m["object_fp"]) == (0.0, 0.0, 0.0, 0.0, 2)
        assert math.isnan(m["instance_dice"])
    else:
        assert (m["pq"], m["aji"], m["instance_dice"], m["object_fn"]) == (0.0, 0.0, 0.0, 2)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="shape"):
        instance_metrics(np.zeros((2, 2)), np.zeros((2, 3)))
