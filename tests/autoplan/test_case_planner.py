"""Case-level plans (classification, multi-label, regression) from hand-built fingerprints: one
configuration per dimensionality, a pooled batch-normalized network, the median shape as input,
the 5%/min-8 batch rule, the loss per task and the imbalance handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.autoplan.case_planner import MAX_POSITIVE_WEIGHT
from autounet.autoplan.memory import GIB, estimate_training_bytes
from autounet.autoplan.planner import PlannerSettings, plan_dataset
from autounet.autoplan.plans import CaseFingerprint, Fingerprint, IntensityStats, Plans
from autounet.io.dataset_json import DatasetSpec

STATS = IntensityStats(mean=100.0, median=98.0, std=15.0, min=0.0, max=255.0, percentile_00_5=20.0,
                       percentile_99_5=230.0, num_samples=1000)
FLAT = 999.0  # the spacing of a 2D file's missing axis


def fingerprint(task: str, shapes, counts=(), mean=(), std=(), dims: int = 2) -> Fingerprint:
    """``shapes``: (Y, X) per case for dims 2, (Z, Y, X) for dims 3."""
    cases = []
    for i, shape in enumerate(shapes):
        shape3 = (1, *shape) if dims == 2 else tuple(shape)
        spacing = (FLAT, 1.0, 1.0) if dims == 2 else (1.0, 1.0, 1.0)
        cases.append(CaseFingerprint(f"case_{i:04d}", spacing, shape3, shape3))
    return Fingerprint("Dataset990_Cases", dims, ("image",), tuple(cases), (STATS,), 1.0, task=task,
                       class_counts=tuple(counts), target_mean=tuple(mean), target_std=tuple(std))


def spec(task: str, names, dims: int = 2) -> DatasetSpec:
    return DatasetSpec(path=Path("/nowhere/Dataset990_Cases"), name="Dataset990_Cases", channel_names=("image",),
                       labels={n: i for i, n in enumerate(names)}, num_training=10,
                       file_ending=".png" if dims == 2 else ".nii.gz",
                       reader="natural2d" if dims == 2 else "simpleitk", task=task)


def classification_plan(counts, shapes=None, dims=2, settings=PlannerSettings()) -> Plans:
    n = sum(counts)
    shapes = shapes or [(28, 28)] * n
    return plan_dataset(fingerprint("classification", shapes, counts, dims=dims),
                        spec("classification", [f"class_{k}" for k in range(len(counts))], dims), settings)


def test_2d_classification_plans_one_pooled_batch_normalized_configuration_at_the_median_shape():
    # 11 cases of 30 x 26 and 10 of 28 x 28: the median shape is 30 x 26
    shapes = [(30, 26)] * 11 + [(28, 28)] * 10
    plans = classification_plan((11, 10), shapes)
    assert list(plans.configurations) == ["2d"]
    stage = plans.configurations["2d"]
    assert stage.patch_size == (30, 26)
    assert stage.network.head == "pooled" and stage.network.norm == "batch"
    assert stage.network.dims == 2 and stage.network.num_outputs == 2 and stage.network.input_channels == 1
    assert stage.network.convs_per_stage_decoder == ()
    assert plans.case_task is not None and plans.task == "classification"
    assert plans.case_task.loss == "cross_entropy" and plans.case_task.names == ("class_0", "class_1")
    assert plans.foreground_labels == () and plans.ignore_label is None
    assert not any("resized" in n for n in plans.notes)  # a spread of < 25% needs no note


def test_widely_spread_shapes_are_noted():
    shapes = [(20, 20)] * 5 + [(28, 28)] * 5 + [(60, 60)] * 5
    plans = classification_plan((8, 7), shapes)
    assert plans.configurations["2d"].patch_size == (28, 28)
    assert any("resized" in n for n in plans.notes), plans.notes


def test_3d_classification_plans_only_3d_fullres():
    plans = classification_plan((10, 10), [(12, 16, 16)] * 20, dims=3)
    assert list(plans.configurations) == ["3d_fullres"]
    stage = plans.configurations["3d_fullres"]
    assert stage.patch_size == (12, 16, 16)
    assert stage.network.dims == 3 and stage.network.head == "pooled" and stage.network.norm == "batch"


@pytest.mark.parametrize("cases,batch", [(2428, 121), (20, 8), (200, 10), (5, 5)])
def test_batch_is_5_percent_of_the_cases_at_least_8_and_at_most_the_cases(cases, batch):
    counts = (cases // 2, cases - cases // 2)
    assert classification_plan(counts).configurations["2d"].batch_size == batch


@pytest.mark.parametrize("counts,imbalance", [((90, 10), "balanced_sampling"), ((50, 50), "none"),
                                              ((60, 40), "none"), ((61, 39), "balanced_sampling"),
                                              ((30, 30, 5), "balanced_sampling")])
def test_classification_is_balanced_when_the_largest_class_has_over_1_5_times_the_smallest(counts, imbalance):
    plans = classification_plan(counts)
    assert plans.case_task.imbalance == imbalance
    assert plans.case_task.class_weights == ()
    assert any("balanced sampling" in n for n in plans.notes) == (imbalance == "balanced_sampling")


def test_multilabel_weights_rare_positives_capped_at_10():
    # 100 cases: 50 positives (ratio 1), 20 (ratio 4), 2 (ratio 49 -> capped), 0 (none at all -> cap)
    names = ("common", "some", "rare", "absent")
    fp = fingerprint("multilabel", [(32, 32)] * 100, counts=(50, 20, 2, 0))
    plans = plan_dataset(fp, spec("multilabel", names))
    task = plans.case_task
    assert task.loss == "binary_cross_entropy" and task.imbalance == "loss_weights"
    assert task.class_weights == pytest.approx((1.0, 4.0, MAX_POSITIVE_WEIGHT, MAX_POSITIVE_WEIGHT))
    assert MAX_POSITIVE_WEIGHT == 10.0
    assert plans.configurations["2d"].network.num_outputs == 4


def test_multilabel_with_balanced_targets_needs_no_weights():
    fp = fingerprint("multilabel", [(32, 32)] * 100, counts=(50, 45))
    task = plan_dataset(fp, spec("multilabel", ("bright", "dark"))).case_task
    assert task.imbalance == "none" and task.class_weights == ()


def test_regression_uses_smooth_l1_and_carries_the_targets_mean_and_spread():
    fp = fingerprint("regression", [(32, 32)] * 30, mean=(3.25, -1.0), std=(0.75, 0.0))
    plans = plan_dataset(fp, spec("regression", ("radius", "offset")))
    task = plans.case_task
    assert task.task == "regression" and task.loss == "smooth_l1" and task.imbalance == "none"
    assert task.names == ("radius", "offset")
    assert task.target_mean == (3.25, -1.0)
    assert task.target_std[0] == 0.75
    assert 0 < task.target_std[1] <= 1e-6  # a constant target: never a division by zero
    assert plans.configurations["2d"].network.num_outputs == 2


@pytest.mark.parametrize("dims,shape,memory", [(3, (512, 512, 512), 8.0), (2, (4096, 4096), 8.0),
                                               (3, (256, 256, 256), 2.0)])
def test_a_huge_median_shape_is_shrunk_until_the_plan_fits_the_memory_target(dims, shape, memory):
    plans = classification_plan((10, 10), [shape] * 20, dims=dims, settings=PlannerSettings(memory_target_gb=memory))
    stage = next(iter(plans.configurations.values()))
    assert all(p < s for p, s in zip(stage.patch_size, shape))
    assert stage.estimated_memory_gb <= plans.memory_target_gb == memory
    assert estimate_training_bytes(stage.patch_size, stage.network, stage.batch_size) <= memory * GIB
    assert stage.batch_size >= 8
    assert any("shrunk" in n for n in plans.notes), plans.notes
    # the spacing grows as the input shrinks: the input still covers the whole image
    spacing = stage.spacing[-dims:]
    assert all(sp * p == pytest.approx(s, rel=0.02) for sp, p, s in zip(spacing, stage.patch_size, shape))


@pytest.mark.parametrize("task,names,kwargs,dims", [
    ("classification", ("a", "b"), {"counts": (90, 10)}, 2),
    ("classification", ("a", "b", "c"), {"counts": (10, 10, 10)}, 3),
    ("multilabel", ("bright", "dark"), {"counts": (30, 2)}, 2),
    ("regression", ("radius",), {"mean": (2.5,), "std": (0.5,)}, 2),
])
def test_plans_round_trip_through_json_unchanged(task, names, kwargs, dims):
    shapes = [(28, 28)] * 32 if dims == 2 else [(10, 14, 12)] * 30
    plans = plan_dataset(fingerprint(task, shapes, dims=dims, **kwargs), spec(task, names, dims))
    again = Plans.from_json(json.loads(json.dumps(plans.to_json())))
    assert again == plans
    assert again.case_task == plans.case_task and again.task == task
    assert again.to_json() == plans.to_json()


def test_a_declared_class_without_cases_does_not_switch_balancing_off():
    assert classification_plan((90, 10, 0)).case_task.imbalance == "balanced_sampling"
