"""Largest-component filters on hand-made arrays: connectivity, rules, regions, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autounet.postprocess import labelling
from autounet.postprocess.components import PostprocessingRules, apply_rules, keep_largest_component


def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    """A (Z, Y, X) mask with three components and the largest one, which is held together only
    by corners: 5 voxels on a space diagonal, against a 3-voxel bar and a single voxel."""
    mask = np.zeros((6, 8, 9), bool)
    diagonal = np.zeros_like(mask)
    for i in range(5):
        diagonal[i, i, i] = True
    mask |= diagonal
    mask[0, 6, 4:7] = True  # face-connected bar, far from the diagonal
    mask[5, 0, 8] = True  # lonely voxel
    return mask, diagonal


@pytest.mark.parametrize("use_cc3d", [True, False])
def test_keep_largest_component_full_connectivity(monkeypatch, use_cc3d: bool):
    if not use_cc3d:
        monkeypatch.setattr(labelling, "cc3d", None)  # the scipy fallback
    elif labelling.cc3d is None:
        pytest.skip("connected-components-3d not installed")
    mask, diagonal = three_blobs()
    out = keep_largest_component(mask)
    assert out.dtype == bool and out.shape == mask.shape
    assert np.array_equal(out, diagonal)
    assert mask.sum() == 9  # the input is untouched


@pytest.mark.parametrize("use_cc3d", [True, False])
def test_keep_largest_component_2d_and_edge_cases(monkeypatch, use_cc3d: bool):
    if not use_cc3d:
        monkeypatch.setattr(labelling, "cc3d", None)
    mask = np.zeros((1, 6, 6), bool)  # a 2D image as (1, Y, X): 8-connectivity
    mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 2, 2] = True  # diagonal line, 3 pixels
    mask[0, 5, 3:5] = True  # 2 pixels
    expected = np.zeros_like(mask)
    expected[0, [0, 1, 2], [0, 1, 2]] = True
    assert np.array_equal(keep_largest_component(mask), expected)
    assert np.array_equal(keep_largest_component(mask[0]), expected[0])  # plain (Y, X) too
    assert not keep_largest_component(np.zeros((3, 4, 5), bool)).any()
    single = np.zeros((3, 4, 5), bool)
    single[1:3, 1:3, 2:4] = True
    assert np.array_equal(keep_largest_component(single), single)
    assert np.array_equal(keep_largest_component(single.astype(np.uint8)), single)  # nonzero = foreground
    with pytest.raises(ValueError, match="2D or 3D"):
        keep_largest_component(np.zeros((2, 2, 2, 2), bool))


def test_foreground_rule_treats_all_labels_as_one_object():
    seg = np.zeros((4, 10, 10), np.uint8)
    seg[1:3, 1:4, 1:4] = 1
    seg[1:3, 1:4, 4:6] = 2  # touches label 1: same foreground object
    seg[3, 8:10, 8:10] = 2  # far away: removed
    seg[0, 9, 0] = 1  # far away: removed
    out = apply_rules(seg, PostprocessingRules(keep_largest_foreground=True))
    expected = seg.copy()
    expected[3, 8:10, 8:10] = 0
    expected[0, 9, 0] = 0
    assert out.dtype == seg.dtype and np.array_equal(out, expected)
    assert seg[0, 9, 0] == 1  # a new array; the input is untouched
    assert np.array_equal(apply_rules(seg, PostprocessingRules()), seg)


def test_per_class_rule_only_touches_its_class():
    seg = np.zeros((4, 10, 10), np.int16)
    seg[0:2, 0:3, 0:3] = 1
    seg[3, 9, 9] = 1  # small class-1 component: removed
    seg[0:2, 6:8, 6:8] = 2
    seg[3, 0, 9] = 2  # small class-2 component: kept, class 2 has no rule
    out = apply_rules(seg, PostprocessingRules(keep_largest_per_class=(1,)))
    expected = seg.copy()
    expected[3, 9, 9] = 0
    assert np.array_equal(out, expected)
    both = apply_rules(seg, PostprocessingRules(keep_largest_per_class=(1, 2)))
    expected[3, 0, 9] = 0
    assert np.array_equal(both, expected)


def test_region_class_is_the_union_of_its_labels():
    seg = np.zeros((3, 8, 8), np.uint8)
    seg[0:2, 0:3, 0:3] = 1
    seg[0:2, 3:5, 0:3] = 2  # touches label 1: part of the region's largest component
    seg[2, 7, 7] = 2  # far away: removed
    seg[2, 7, 0] = 3  # not in the region: kept
    out = apply_rules(seg, PostprocessingRules(keep_largest_per_class=((1, 2),)))
    expected = seg.copy()
    expected[2, 7, 7] = 0
    assert np.array_equal(out, expected)
    # label 2 on its own would keep only the bigger of its parts
    alone = apply_rules(seg, PostprocessingRules(keep_largest_per_class=(2,)))
    assert alone[2, 7, 7] == 0 and (alone == 2).sum() == 12


def test_foreground_rule_runs_before_per_class_rules():
    seg = np.zeros((1, 12, 12), np.uint8)
    seg[0, 0:4, 0:4] = 1  # biggest foreground object (16)
    seg[0, 8:12, 8:11] = 2  # second object, class 2, 12 pixels
    seg[0, 0, 11] = 2  # lonely class-2 pixel
    out = apply_rules(seg, PostprocessingRules(True, (2,)))
    expected = np.zeros_like(seg)
    expected[0, 0:4, 0:4] = 1  # the foreground rule already removed every class-2 pixel
    assert np.array_equal(out, expected)


def test_rules_json_round_trip_and_validation():
    rules = PostprocessingRules(keep_largest_foreground=True, keep_largest_per_class=(1, (2, 3), np.int64(4)))
    assert rules.keep_largest_per_class == (1, (2, 3), 4)
    d = json.loads(json.dumps(rules.to_json()))
    assert d["keep_largest_per_class"] == [1, [2, 3], 4]
    back = PostprocessingRules.from_json(d)
    assert back == rules and hash(back) == hash(rules)
    assert not rules.is_identity
    assert PostprocessingRules().is_identity
    assert PostprocessingRules.from_json({}).is_identity
    assert not PostprocessingRules(keep_largest_per_class=[2]).is_identity
    with pytest.raises(ValueError, match="background"):
        PostprocessingRules(keep_largest_per_class=(0,))
    with pytest.raises(ValueError, match="label value"):
        PostprocessingRules(keep_largest_per_class=("liver",))
    with pytest.raises(ValueError, match="label value"):
        PostprocessingRules(keep_largest_per_class=([1, [2]],))
    with pytest.raises(ValueError, match="unknown fields"):
        PostprocessingRules.from_json({"keep_largest": True})
    with pytest.raises(ValueError, match="true or false"):
        PostprocessingRules.from_json({"keep_largest_foreground": "yes"})
    with pytest.raises(ValueError, match="schema_version"):
        PostprocessingRules.from_json({"schema_version": 99})
