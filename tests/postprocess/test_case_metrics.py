"""Case-level metrics (classification, multi-label, regression) on small hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autounet.postprocess.case_metrics import (
    auc, case_metrics, classification_metrics, confusion_matrix, multilabel_metrics, regression_metrics,
    operating_point, roc_curve, validation_score,
)

NAN = float("nan")


def pair_count_auc(y, s) -> float:
    """The AUC's definition, pair by pair: a win counts 1, a tie 1/2."""
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def plain_json(value) -> bool:
    """Only built-in types all the way down (no numpy scalars or arrays)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_json(v) for v in value)
    return type(value) in (int, float, str, bool)


# ---------------------------------------------------------------- AUC and ROC

# Positives score .9 .5 .1, negatives .9 .3. Pairs (pos, neg): (.9,.9) tie 1/2, (.9,.3) 1,
# (.5,.9) 0, (.5,.3) 1, (.1,.9) 0, (.1,.3) 0 -> 2.5 of 6 pairs.
Y_SMALL = np.array([1, 0, 1, 0, 1])
S_SMALL = np.array([0.9, 0.9, 0.5, 0.3, 0.1])


def test_auc_counts_pairs_and_ties_count_half():
    assert auc(Y_SMALL, S_SMALL) == pytest.approx(2.5 / 6)


def test_auc_perfect_inverted_all_tied_and_one_class():
    y = np.array([0, 0, 1, 1, 1])
    assert auc(y, [0.1, 0.2, 0.3, 0.4, 0.5]) == 1.0
    assert auc(y, [0.5, 0.4, 0.3, 0.2, 0.1]) == 0.0
    assert auc(y, [0.7] * 5) == 0.5
    assert math.isnan(auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(auc([0, 0], [0.1, 0.5]))


def test_auc_matches_pair_counting_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 30)
        s = rng.integers(0, 5, 30).astype(float)  # five score levels: many ties
        if 0 < y.sum() < y.size:
            assert auc(y, s) == pytest.approx(pair_count_auc(y, s))


def test_roc_curve_hand_computed_points():
    # Thresholds .9 (one pos, one neg together: a diagonal step), .5 (pos), .3 (neg), .1 (pos).
    fpr, tpr = roc_curve(Y_SMALL, S_SMALL)
    assert fpr.tolist() == pytest.approx([0, 1 / 2, 1 / 2, 1, 1])
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1])


def test_roc_curve_endpoints_monotone_and_area_equals_auc():
    rng = np.random.default_rng(1)
    for _ in range(10):
        y = np.r_[0, 1, rng.integers(0, 2, 40)]
        s = np.round(rng.random(42), 1)  # ties
        fpr, tpr = roc_curve(y, s)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert fpr.size == np.unique(s).size + 1  # one point per distinct threshold, plus (0, 0)
        assert trapezoid(fpr, tpr) == pytest.approx(auc(y, s))


def test_roc_curve_all_tied_is_the_diagonal():
    fpr, tpr = roc_curve([0, 1, 1, 0], [0.3, 0.3, 0.3, 0.3])
    assert fpr.tolist() == [0, 1] and tpr.tolist() == [0, 1]


# ---------------------------------------------------------------- classification

# True 0 -> predicted 0 0 1; true 1 -> 1 1 1 2; true 2 -> 2 0 2.
Y3 = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
PRED3 = np.array([0, 0, 1, 1, 1, 1, 2, 2, 0, 2])
CM3 = [[2, 1, 0],
       [0, 3, 1],
       [1, 0, 2]]


def one_hot_probs(pred: np.ndarray, k: int) -> np.ndarray:
    probs = np.full((pred.size, k), 0.4 / (k - 1))
    probs[np.arange(pred.size), pred] = 0.6
    return probs


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix(Y3, PRED3, 3).tolist() == CM3
    assert confusion_matrix([0, 0, 1], [1, 1, 1], 3).tolist() == [[0, 2, 0], [0, 1, 0], [0, 0, 0]]


def test_three_class_metrics_by_hand():
    m = classification_metrics(Y3, one_hot_probs(PRED3, 3), ["a", "b", "c"])
    assert m["confusion_matrix"] == CM3
    assert m["num_cases"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    a, b, c = m["per_class"]["a"], m["per_class"]["b"], m["per_class"]["c"]
    # a: TP 2, FN 1, FP 1 (a true c), TN 6.   b: TP 3, FN 1, FP 1, TN 5.   c: TP 2, FN 1, FP 1, TN 6.
    assert (a["sensitivity"], a["specificity"], a["precision"]) == pytest.approx((2 / 3, 6 / 7, 2 / 3))
    assert (b["sensitivity"], b["specificity"], b["precision"]) == pytest.approx((3 / 4, 5 / 6, 3 / 4))
    assert (c["sensitivity"], c["specificity"], c["precision"]) == pytest.approx((2 / 3, 6 / 7, 2 / 3))
    assert (a["f1"], b["f1"], c["f1"]) == pytest.approx((2 / 3, 3 / 4, 2 / 3))
    assert m["f1_macro"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert (a["support"], b["support"], c["support"]) == (3, 4, 3)
    # Class a scores .6 where predicted a, else .2. Positives .6 .6 .2; negatives six .2 and one .6:
    # 2*6 wins + 2*1 ties (1) + 1*6 ties (3) = 16 of 21 pairs.
    assert a["auc"] == pytest.approx(16 / 21)
    assert m["auc"] == pytest.approx(np.mean([a["auc"], b["auc"], c["auc"]]))
    assert plain_json(m)


def test_imbalanced_majority_predictor():
    y = np.array([1] + [0] * 9)
    m = classification_metrics(y, np.tile([0.9, 0.1], (10, 1)), ["healthy", "sick"])
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["auc"] == 0.5  # every score tied
    sick = m["per_class"]["sick"]
    assert math.isnan(sick["precision"])  # never predicted: 0/0
    assert sick["sensitivity"] == 0 and sick["f1"] == 0  # a missed class is F1 0, not NaN
    assert m["f1_macro"] == pytest.approx((18 / 19 + 0) / 2)


def test_binary_auc_is_class_one_probability_auc():
    y = np.array([0, 1, 1, 0, 1, 0])
    p1 = np.array([0.2, 0.7, 0.4, 0.4, 0.9, 0.1])
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1), ["neg", "pos"])
    assert m["auc"] == pytest.approx(pair_count_auc(y, p1))
    assert m["auc"] == pytest.approx(17 / 18)  # (.4, .4) is the only non-win: a tie


def test_class_absent_from_truth_is_left_out_of_balanced_accuracy_and_auc():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.35, 0.05, 0.6], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    c = m["per_class"]["c"]
    assert c["support"] == 0 and math.isnan(c["sensitivity"]) and math.isnan(c["auc"])
    assert c["specificity"] == pytest.approx(3 / 4) and c["f1"] == 0  # one false positive
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["auc"] == pytest.approx(1.0)  # a and b rank perfectly; c's NaN is skipped
    assert json.loads(json.dumps(m))["per_class"]["c"]["support"] == 0


# ---------------------------------------------------------------- multi-label

def test_multilabel_per_target_by_hand():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    p = np.array([[0.8, 0.5], [0.6, 0.2], [0.4, 0.2], [0.1, 0.2]])  # 0.5 is on the positive side
    m = multilabel_metrics(y, p, ["fracture", "tumour"])
    f, t = m["per_target"]["fracture"], m["per_target"]["tumour"]
    # fracture: predicted 1 1 0 0 against 1 0 1 0 -> TP 1, FP 1, FN 1, TN 1; pairs .8>.6 .8>.1 .4<.6 .4>.1
    assert (f["accuracy"], f["sensitivity"], f["specificity"], f["f1"]) == pytest.approx((0.5, 0.5, 0.5, 0.5))
    assert f["auc"] == pytest.approx(3 / 4) and f["support"] == 2
    # tumour: no positives; one false positive
    assert t["accuracy"] == pytest.approx(0.75) and t["specificity"] == pytest.approx(0.75)
    assert math.isnan(t["sensitivity"]) and math.isnan(t["auc"]) and t["f1"] == 0 and t["support"] == 0
    assert m["auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.625)
    assert m["f1_macro"] == pytest.approx(0.25)
    assert m["num_cases"] == 4 and plain_json(m)


def test_multilabel_one_dimensional_is_one_target():
    m = multilabel_metrics([1, 0, 1], [0.9, 0.2, 0.7], ["x"])
    assert list(m["per_target"]) == ["x"] and m["accuracy"] == 1.0 and m["auc"] == 1.0


# ---------------------------------------------------------------- regression

def test_regression_four_values_by_hand():
    # errors 1 0 -1 2: MAE 4/4, MSE 6/4; mean 2.5 -> SS_tot 2.25+.25+.25+2.25 = 5, SS_res 6
    m = regression_metrics([1, 2, 3, 4], [2, 2, 2, 6], ["age"])
    age = m["per_target"]["age"]
    assert age["mae"] == pytest.approx(1.0)
    assert age["rmse"] == pytest.approx(math.sqrt(1.5))
    assert age["r2"] == pytest.approx(1 - 6 / 5)
    assert (m["mae"], m["rmse"], m["r2"], m["num_cases"]) == pytest.approx((1.0, math.sqrt(1.5), -0.2, 4))


def test_regression_perfect_mean_and_constant_targets():
    t = np.array([[1.0, 3.0, 5.0], [2.0, 3.0, 7.0], [6.0, 3.0, 0.0]])
    pred = np.stack([t[:, 0], [3.0, 3.0, 3.0], np.full(3, t[:, 2].mean())], axis=1)
    m = regression_metrics(t, pred, ["perfect", "constant", "mean"])
    per = m["per_target"]
    assert per["perfect"]["r2"] == 1.0 and per["perfect"]["mae"] == 0
    assert math.isnan(per["constant"]["r2"]) and per["constant"]["mae"] == 0  # SS_tot = 0
    assert per["mean"]["r2"] == pytest.approx(0.0)
    assert m["r2"] == pytest.approx(0.5)  # NaN skipped: (1 + 0) / 2
    assert m["mae"] == pytest.approx(per["mean"]["mae"] / 3)
    assert plain_json(m)


# ---------------------------------------------------------------- dispatch and selection score

def test_case_metrics_dispatches_on_task():
    y, p = np.array([0, 1, 1]), np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    as_text = lambda m: json.dumps(m, sort_keys=True)  # NaN-safe equality
    assert as_text(case_metrics("classification", y, p, ["a", "b"])) == \
        as_text(classification_metrics(y, p, ["a", "b"]))
    yy = np.array([[0, 1], [1, 1], [0, 0]])
    assert as_text(case_metrics("multilabel", yy, p, ["a", "b"])) == as_text(multilabel_metrics(yy, p, ["a", "b"]))
    assert as_text(case_metrics("regression", p, p * 2, ["a", "b"])) == \
        as_text(regression_metrics(p, p * 2, ["a", "b"]))
    with pytest.raises(ValueError, match="segmentation"):
        case_metrics("segmentation", y, p, ["a", "b"])


def test_validation_score_higher_is_better():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    close, far = regression_metrics(t, t + 0.1, ["v"]), regression_metrics(t, t + 2.0, ["v"])
    assert validation_score("regression", close) == pytest.approx(-0.1)
    assert validation_score("regression", close) > validation_score("regression", far)
    y = np.array([0, 1, 0, 1])
    good = classification_metrics(y, [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], ["a", "b"])
    bad = classification_metrics(y, [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["a", "b"])
    assert validation_score("classification", good) == 1.0 > validation_score("classification", bad) == 0.0


def test_validation_score_falls_back_when_auc_is_nan():
    one_class = classification_metrics([0, 0, 0], [[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]], ["a", "b"])
    assert math.isnan(one_class["auc"])
    assert validation_score("classification", one_class) == pytest.approx(2 / 3)  # balanced accuracy
    no_positives = multilabel_metrics([[0], [0], [0], [0]], [[0.1], [0.7], [0.2], [0.3]], ["x"])
    assert validation_score("multilabel", no_positives) == pytest.approx(0.75)  # accuracy
    with pytest.raises(ValueError, match="'detection'"):
        validation_score("detection", one_class)


# ---------------------------------------------------------------- input errors

@pytest.mark.parametrize("call,message", [
    (lambda: auc([0, 1, 1], [0.1, 0.2]), "shape mismatch"),
    (lambda: auc([], []), "empty"),
    (lambda: auc([0, 1, 2], [0.1, 0.2, 0.3]), "out of range 0..1"),
    (lambda: auc([0, 1], [0.1, np.nan]), "non-finite"),
    (lambda: roc_curve([0, 1], [np.inf, 0.2]), "non-finite"),
    (lambda: confusion_matrix([0, 3], [0, 1], 3), r"y_true has labels out of range 0..2: \[3\]"),
    (lambda: confusion_matrix([0, 1], [0, -1], 3), "y_pred has labels out of range"),
    (lambda: classification_metrics([0, 1.5], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"]), "whole numbers"),
    (lambda: classification_metrics([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a"]), "1 class names for 2"),
    (lambda: classification_metrics([0, 1, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"]), "shape mismatch"),
    (lambda: classification_metrics([0, 1], [[0.5, np.nan], [0.2, 0.8]], ["a", "b"]), "probabilities.*non-finite"),
    (lambda: classification_metrics([0, 0], [[1.0], [1.0]], ["a"]), "at least 2 columns"),
    (lambda: multilabel_metrics([[0, 1]], [[0.5, 0.5, 0.1]], ["a", "b"]), "shape mismatch"),
    (lambda: multilabel_metrics([[0, 2]], [[0.5, 0.5]], ["a", "b"]), "out of range"),
    (lambda: multilabel_metrics([[0, 1]], [[0.5, 0.5]], ["a", "a"]), "unique"),
    (lambda: regression_metrics([1.0, 2.0], [1.0, 2.0, 3.0], ["v"]), "shape mismatch"),
    (lambda: regression_metrics(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"]), "empty"),
    (lambda: regression_metrics([1.0, np.nan], [1.0, 2.0], ["v"]), "y_true contains non-finite"),
    (lambda: regression_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), ["a", "b"]), "1D or 2D"),
])
def test_bad_inputs_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- operating point


def test_operating_point_maximizes_balanced_accuracy_on_the_grid():
    # positives score 0.3-0.4, negatives 0.1-0.2: any threshold in (0.2, 0.3] separates them;
    # the one nearest 0.5 among the best is 0.3
    y = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.15, 0.2, 0.3, 0.35, 0.4])
    assert operating_point(y, scores) == pytest.approx(0.3)
    # at 0.5 every positive would be missed: balanced accuracy 0.5 instead of 1
    assert operating_point(np.array([1, 1]), np.array([0.9, 0.1])) == 0.5  # one class only: the default


def test_predicted_classes_override_the_argmax():
    y = np.array([0, 1, 1])
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    assert classification_metrics(y, probs, ["a", "b"])["accuracy"] == pytest.approx(2 / 3)
    assert classification_metrics(y, probs, ["a", "b"], predicted=np.array([0, 1, 1]))["accuracy"] == 1.0
    assert multilabel_metrics(y[:, None], probs[:, 1:], ["b"], predicted=np.array([[0], [1], [1]]))["accuracy"] == 1.0
