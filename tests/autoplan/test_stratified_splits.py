"""Stratified cross-validation splits for case-level tasks: each class keeps its share in every
fold, every case is validated once, and the same seed gives the same folds."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from autounet.autoplan.splits import make_splits, strata_of


def ids(n: int) -> list[str]:
    return [f"case_{i:03d}" for i in range(n)]


def one_in_ten(n: int = 50) -> dict[str, int]:
    """Every tenth case is of the minority class 1 (1:9)."""
    return {c: int(i % 10 == 3) for i, c in enumerate(ids(n))}


def test_a_1_to_9_set_puts_one_minority_case_into_every_fold():
    strata = one_in_ten(50)
    splits = make_splits(list(strata), num_folds=5, seed=7, strata=strata)
    assert len(splits) == 5
    for fold in splits:
        classes = Counter(strata[c] for c in fold["val"])
        assert classes == {0: 9, 1: 1}, classes
        assert Counter(strata[c] for c in fold["train"]) == {0: 36, 1: 4}


def test_stratification_is_what_keeps_the_minority_in_every_fold():
    """Without strata, some seed leaves a fold without a minority case (so the check above can fail)."""
    strata = one_in_ten(50)
    missing = [seed for seed in range(20)
               if any(not any(strata[c] for c in f["val"]) for f in make_splits(list(strata), seed=seed))]
    assert missing
    assert not [seed for seed in range(20)
                if any(not any(strata[c] for c in f["val"]) for f in make_splits(list(strata), seed=seed, strata=strata))]


@pytest.mark.parametrize("n,shares", [(50, (45, 5)), (60, (54, 6)), (23, (10, 8, 5)), (7, (5, 2))])
def test_every_case_is_validated_once_and_never_trained_on_by_its_fold(n, shares):
    labels = np.repeat(np.arange(len(shares)), shares)
    strata = dict(zip(ids(n), np.random.default_rng(n).permutation(labels).tolist()))
    splits = make_splits(list(strata), seed=1, strata=strata)
    validated = [c for f in splits for c in f["val"]]
    assert sorted(validated) == sorted(strata)
    for f in splits:
        assert set(f["train"]) | set(f["val"]) == set(strata) and not set(f["train"]) & set(f["val"])
    sizes = [len(f["val"]) for f in splits]
    assert max(sizes) - min(sizes) <= 1
    for k, count in enumerate(shares):  # each class spread as evenly as the folds allow
        per_fold = [sum(strata[c] == k for c in f["val"]) for f in splits]
        assert max(per_fold) - min(per_fold) <= 1, (k, per_fold)


def test_the_same_seed_gives_the_same_splits_and_another_seed_others():
    strata = one_in_ten(50)
    a = make_splits(list(strata), seed=3, strata=strata)
    assert make_splits(list(reversed(list(strata))), seed=3, strata=strata) == a  # order of the ids does not matter
    assert make_splits(list(strata), seed=4, strata=strata) != a


def test_strata_of_classification_is_the_class():
    targets = {"a": np.array([0.0]), "b": np.array([2.0]), "c": np.array([1.0])}
    assert strata_of("classification", targets) == {"a": 0, "b": 2, "c": 1}


def test_strata_of_multilabel_is_the_rarest_positive_target_or_minus_one():
    # target 0 positive in 3 cases, target 1 in 1 case, target 2 in 2 cases: rarest is 1, then 2, then 0
    targets = {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([1.0, 0.0, 1.0]), "c": np.array([1.0, 0.0, 0.0]),
               "d": np.array([0.0, 0.0, 0.0])}
    assert strata_of("multilabel", targets) == {"a": 1, "b": 2, "c": 0, "d": -1}


def test_strata_of_regression_is_the_quantile_bin_of_the_first_target():
    values = np.arange(50, dtype=float)[::-1]  # any order
    targets = {f"c{i:02d}": np.array([v, -v]) for i, v in enumerate(values)}
    strata = strata_of("regression", targets)
    assert set(strata.values()) == {0, 1, 2, 3, 4}
    assert Counter(strata.values()) == {k: 10 for k in range(5)}
    by_value = sorted(targets, key=lambda c: targets[c][0])
    assert [strata[c] for c in by_value] == sorted(strata[c] for c in by_value)  # bins follow the values
    assert strata_of("segmentation", targets) is None


def test_stratified_regression_folds_each_cover_the_range():
    targets = {f"c{i:02d}": np.array([float(i)]) for i in range(50)}
    splits = make_splits(list(targets), seed=0, strata=strata_of("regression", targets))
    for f in splits:
        bins = sorted(int(targets[c][0]) // 10 for c in f["val"])
        assert bins == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4], bins
