"""Objects from predicted classes: touching discs and spheres that the interiors keep apart and
connected components merge; the classes made from an instance map; rules chosen on data."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.example_data import synth_objects
from autounet.postprocess.instance_metrics import instance_metrics
from autounet.postprocess.instances import (InstanceRules, candidate_rules, choose_rules, classes_to_instances,
                                            instance_scores)
from autounet.preprocess.instances import instance_classes


def test_the_classes_of_two_touching_objects():
    ids = np.zeros((1, 6, 8), np.int32)
    ids[0, 1:5, 1:4], ids[0, 1:5, 4:7] = 1, 2
    classes = instance_classes(ids)[0]
    assert classes.tolist() == [[0, 0, 0, 0, 0, 0, 0, 0],
                                [0, 2, 2, 2, 2, 2, 2, 0],
                                [0, 2, 1, 2, 2, 1, 2, 0],
                                [0, 2, 1, 2, 2, 1, 2, 0],
                                [0, 2, 2, 2, 2, 2, 2, 0],
                                [0, 0, 0, 0, 0, 0, 0, 0]]  # the interiors of touching objects never touch


@pytest.mark.parametrize("shape", [(1, 64, 64), (24, 40, 40)], ids=["2D discs", "3D spheres"])
def test_interiors_separate_touching_objects_that_components_merge(shape):
    _, ids = synth_objects(np.random.default_rng(1), tuple(n for n in shape if n > 1), 6.0)
    ids = ids.reshape(shape)
    classes = instance_classes(ids)
    objects = classes_to_instances(classes)
    assert instance_metrics(objects, ids)["pq"] > 0.9  # each object found, from the classes alone
    merged = classes_to_instances(classes, InstanceRules("components"))
    assert merged.max() < ids.max() and instance_metrics(merged, ids)["pq"] < 0.5
    assert set(np.unique(objects)) == set(range(objects.max() + 1))  # renumbered 1..N


def test_small_objects_and_seeds_are_dropped_by_size():
    classes = np.zeros((1, 12, 12), np.uint8)
    classes[0, 1:7, 1:7] = 2
    classes[0, 2:6, 2:6] = 1          # an object of 36 px with a 16 px interior
    classes[0, 9:11, 9:11] = 1         # a 4 px speck
    assert classes_to_instances(classes).max() == 2
    assert classes_to_instances(classes, InstanceRules("interior", 0, 10)).max() == 1
    assert classes_to_instances(classes, InstanceRules("interior", 5, 0)).max() == 1


def test_rules_round_trip_and_refuse_another_kind():
    rules = InstanceRules("interior", 3, 12)
    assert InstanceRules.from_json(rules.to_json()) == rules and "12 voxels" in rules.describe()
    with pytest.raises(ValueError, match="not instance rules"):
        InstanceRules.from_json({"keep_largest_foreground": True})
    assert {r.seeds for r in candidate_rules(100)} == {"interior", "components"}


def test_the_cross_validation_chooses_interiors_for_touching_objects():
    cases = [synth_objects(np.random.default_rng(s), (48, 48), 5.0)[1][None] for s in range(3)]
    rules, report = choose_rules([instance_classes(c) for c in cases], cases)
    assert rules.seeds == "interior" and len(report) == len(candidate_rules(np.median([25 * 3.14])))
    scores = instance_scores(instance_classes(cases[0]), cases[0])["1"]
    assert scores["dice"] == 1.0 and scores["pq"] > 0.9
