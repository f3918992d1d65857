"""Known fingerprints give known plans."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from autounet.autoplan.memory import GIB, estimate_training_bytes
from autounet.autoplan.planner import PlannerSettings, coarsest_axis_first, plan_dataset, target_spacing
from autounet.autoplan.plans import CaseFingerprint, Fingerprint, IntensityStats, Plans
from autounet.autoplan.topology import pooling_and_kernels
from autounet.io.dataset_json import DatasetSpec


def spec(channels=("MRI",), labels=None):
    return DatasetSpec(path=Path("/nowhere"), name="x", channel_names=tuple(channels),
                       labels=labels or {"background": 0, "a": 1, "b": 2}, num_training=10,
                       file_ending=".nii.gz", reader="simpleitk")


def fingerprint(spacings, shapes, channels=("MRI",), relative_size=1.0, file_dims=3):
    stats = IntensityStats(mean=100.0, median=95.0, std=20.0, min=-50.0, max=400.0, percentile_00_5=-10.0,
                           percentile_99_5=300.0, num_samples=1000)
    cases = tuple(CaseFingerprint(f"c{i}", tuple(sp), tuple(sh), tuple(sh)) for i, (sp, sh) in enumerate(zip(spacings, shapes)))
    return Fingerprint("Dataset999_Test", file_dims, tuple(channels), cases, (stats,) * len(channels), relative_size)


def test_isotropic_large_images_give_nnunet_reference_plan():
    # 1 mm isotropic, 160^3 images: nnU-Net plans 128^3, batch 2, 6 stages, 32..320 features for 8 GB
    fp = fingerprint([(1.0, 1.0, 1.0)] * 10, [(160, 160, 160)] * 10)
    plans = plan_dataset(fp, spec())
    full = plans.configurations["3d_fullres"]
    assert full.patch_size == (128, 128, 128)
    assert full.batch_size == 2
    assert full.network.features_per_stage == (32, 64, 128, 256, 320, 320)
    assert full.network.kernel_sizes == ((3, 3, 3),) * 6
    assert full.network.strides == ((1, 1, 1),) + ((2, 2, 2),) * 5
    assert full.batch_dice is False and plans.configurations["2d"].batch_dice is True
    assert full.estimated_memory_gb <= 8.0
    assert plans.configurations["2d"].network.features_per_stage[-1] == 512
    assert plans.transpose_forward == (0, 1, 2)


def test_anisotropic_target_spacing_uses_10th_percentile_and_coarse_axis_first():
    rng = np.random.default_rng(0)
    # the coarse axis is the last one here: it must move to the front
    spacings = [(0.8, 0.8, float(z)) for z in rng.uniform(2.5, 5.0, 20)]
    fp = fingerprint(spacings, [(200, 200, 40)] * 20)
    target = target_spacing(np.array(spacings), np.array([(200, 200, 40)] * 20), 3.0)
    assert target[2] == pytest.approx(np.percentile([s[2] for s in spacings], 10))
    plans = plan_dataset(fp, spec())
    assert plans.transpose_forward == (2, 0, 1)
    assert plans.transpose_backward == (1, 2, 0)
    full = plans.configurations["3d_fullres"]
    assert full.spacing[0] == pytest.approx(target[2])
    # first stage: kernel 1 along the coarse axis, no pooling there until in-plane catches up
    assert full.network.kernel_sizes[0] == (1, 3, 3)
    assert full.network.strides[1] == (1, 2, 2)


def test_target_spacing_not_below_other_axes():
    spacings = np.array([[0.5, 0.5, 4.0]] * 9 + [[0.5, 0.5, 0.4]])
    assert target_spacing(spacings, np.array([(400, 400, 20)] * 10), 3.0)[2] >= 0.5


def test_coarse_axis_with_many_slices_keeps_its_median_spacing():
    # 3 mm slices but almost as many of them as in-plane voxels: a long volume, not a stack of
    # thick slices, so no upsampling along it (nnU-Net's rule asks for both conditions)
    spacings = np.array([[0.8, 0.8, 3.0]] * 9 + [[0.8, 0.8, 1.0]])
    assert target_spacing(spacings, np.array([(60, 60, 30)] * 10), 3.0)[2] == pytest.approx(3.0)
    assert target_spacing(spacings, np.array([(200, 200, 30)] * 10), 3.0)[2] < 3.0


def test_pooling_rules():
    strides, kernels = pooling_and_kernels((16, 64, 64), (3.0, 0.75, 0.75))
    # z is 4x coarser: pooled only after two in-plane poolings bring in-plane to 3.0 mm
    assert strides[1] == (1, 2, 2) and strides[2] == (1, 2, 2) and strides[3] == (2, 2, 2)
    assert kernels[0] == (1, 3, 3) and kernels[1] == (1, 3, 3) and kernels[2] == (3, 3, 3)
    # an axis stops at >= 4 voxels: 64 -> 4 is four poolings
    assert sum(s[1] == 2 for s in strides) == 4
    # sizes halve rounding up: 127 -> 64 -> 32 -> 16 -> 8 -> 4 is five poolings (the patch pads to 128)
    strides, _ = pooling_and_kernels((127, 127), (1.0, 1.0))
    assert len(strides) == 6
    # an axis pooled alone needs >= 12 voxels: once z (10 -> 5) is done, y goes 32 -> 16 -> 8 but not to 4
    strides, _ = pooling_and_kernels((10, 64), (1.0, 1.0))
    assert strides == ((1, 1), (2, 2), (1, 2), (1, 2))


def test_lowres_and_cascade_for_large_images():
    fp = fingerprint([(1.0, 0.8, 0.8)] * 10, [(400, 512, 512)] * 10, channels=("CT",))
    plans = plan_dataset(fp, spec(channels=("CT",)))
    assert set(plans.configurations) == {"2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"}
    low = plans.configurations["3d_lowres"]
    full = plans.configurations["3d_fullres"]
    assert math.prod(low.patch_size) / math.prod(low.median_shape) >= 0.25
    assert all(a >= b for a, b in zip(low.spacing, full.spacing))
    casc = plans.configurations["3d_cascade_fullres"]
    assert casc.previous_stage == "3d_lowres" and casc.data_identifier == "3d_fullres"
    assert casc.network.input_channels == 1 + 2  # image + one-hot of the two foreground classes
    norm = plans.normalization[0]
    assert (norm.scheme, norm.clip_low, norm.clip_high, norm.mean, norm.std) == ("ct", -10.0, 300.0, 100.0, 20.0)


def test_no_lowres_for_small_images():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 10, [(60, 70, 80)] * 10)
    assert set(plan_dataset(fp, spec()).configurations) == {"2d", "3d_fullres"}


def test_batch_capped_at_5_percent_of_dataset_and_at_least_2():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 4, [(32, 32, 32)] * 4)
    plans = plan_dataset(fp, spec())
    # 4 cases x 32^3 voxels x 5% < one 32^3 patch: the cap is 0, the minimum 2 wins
    assert plans.configurations["3d_fullres"].batch_size == 2
    fp = fingerprint([(1.0, 1.0, 1.0)] * 100, [(40, 64, 64)] * 100)
    two_d = plan_dataset(fp, spec()).configurations["2d"]
    cap = round(0.05 * 100 * 40 * 64 * 64 / math.prod(two_d.patch_size))
    assert two_d.batch_size == cap


def test_smaller_memory_target_gives_smaller_patch_that_fits():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 10, [(200, 200, 200)] * 10)
    small = plan_dataset(fp, spec(), PlannerSettings(memory_target_gb=2.0)).configurations["3d_fullres"]
    big = plan_dataset(fp, spec()).configurations["3d_fullres"]
    assert math.prod(small.patch_size) < math.prod(big.patch_size)
    assert estimate_training_bytes(small.patch_size, small.network, 2) <= 2.0 * GIB
    assert all(p % f == 0 for p, f in zip(small.patch_size, small.network.downsampling_factor))


def test_normalization_by_channel_name_and_mask_rule():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 5, [(40, 40, 40)] * 5, channels=("T1", "noNorm", "rescale_to_0_1"),
                     relative_size=0.5)
    norms = plan_dataset(fp, spec(channels=("T1", "noNorm", "rescale_to_0_1"))).normalization
    assert [n.scheme for n in norms] == ["zscore", "noNorm", "rescale_to_0_1"]
    assert norms[0].use_nonzero_mask is True
    fp_full = fingerprint([(1.0, 1.0, 1.0)] * 5, [(40, 40, 40)] * 5, relative_size=0.9)
    assert plan_dataset(fp_full, spec()).normalization[0].use_nonzero_mask is False


def test_residual_encoder_variant():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 10, [(160, 160, 160)] * 10)
    net = plan_dataset(fp, spec(), PlannerSettings(block="residual")).configurations["3d_fullres"].network
    assert net.block == "residual" and net.convs_per_stage_encoder[:3] == (1, 3, 4)


def test_plans_json_round_trip():
    fp = fingerprint([(1.0, 0.8, 0.8)] * 10, [(400, 512, 512)] * 10, channels=("CT",))
    plans = plan_dataset(fp, spec(channels=("CT",)))
    again = Plans.from_json(json.loads(json.dumps(plans.to_json())))
    assert again == plans
    assert Fingerprint.from_json(json.loads(json.dumps(fp.to_json()))) == fp


def test_plans_from_other_schema_version_is_refused():
    fp = fingerprint([(1.0, 1.0, 1.0)] * 5, [(40, 40, 40)] * 5)
    d = plan_dataset(fp, spec()).to_json()
    d["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version"):
        Plans.from_json(d, "plans.json")


def test_coarsest_axis_first_keeps_order_of_the_rest():
    assert coarsest_axis_first((1.0, 5.0, 1.0)) == (1, 0, 2)
    assert coarsest_axis_first((1.0, 1.0, 1.0)) == (0, 1, 2)


@pytest.mark.parametrize("spacing,shape", [((1.0, 0.77, 0.77), (432, 512, 512)),   # LiTS-like liver CT
                                           ((0.8, 0.8, 0.8), (450, 512, 512))])
def test_cascade_when_the_lowres_patch_equals_the_fullres_patch(spacing, shape):
    # 128^3 at both resolutions, but the low-resolution image is far smaller: the patch now sees a
    # quarter of it instead of 2%, which is the point of the cascade
    fp = fingerprint([spacing] * 20, [shape] * 20, channels=("CT",))
    plans = plan_dataset(fp, spec(channels=("CT",)))
    assert set(plans.configurations) == {"2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"}
    low, full = plans.configurations["3d_lowres"], plans.configurations["3d_fullres"]
    assert low.patch_size == full.patch_size == (128, 128, 128)
    assert math.prod(low.median_shape) * 2 <= math.prod(full.median_shape)
    # as nnU-Net: batch Dice for the full-resolution stages of a cascade, per-sample Dice for lowres
    assert full.batch_dice and plans.configurations["3d_cascade_fullres"].batch_dice and not low.batch_dice


def test_memory_target_below_the_fixed_overhead_is_a_clear_error_not_a_hang():
    import time
    fp = fingerprint([(1.0, 0.77, 0.77)] * 20, [(432, 512, 512)] * 20)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"0.3 GB is too small to plan for.*at least 1 GB"):
        plan_dataset(fp, spec(), PlannerSettings(memory_target_gb=0.3))
    assert time.perf_counter() - t0 < 1.0


def test_small_memory_targets_end_quickly_with_a_plan_that_fits_or_says_it_does_not():
    import time
    fp = fingerprint([(1.0, 0.77, 0.77)] * 20, [(432, 512, 512)] * 20)
    for target in (1.0, 1.2):
        t0 = time.perf_counter()
        plans = plan_dataset(fp, spec(), PlannerSettings(memory_target_gb=target))
        assert time.perf_counter() - t0 < 1.0
        for c in plans.configurations.values():
            fits = c.estimated_memory_gb <= target
            assert fits or any(n.startswith(f"{c.name}: even the smallest patch") for n in plans.notes)
            if not fits:
                assert all(p == f for p, f in zip(c.patch_size, c.network.downsampling_factor))
