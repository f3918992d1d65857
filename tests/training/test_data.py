"""Patch sampling and augmentation."""

import numpy as np
import pytest

from autounet.training.augmentation import augmentation_params, enlarged_patch_size, training_transforms
from autounet.training.data import BatchStream, CaseArrays, PatchSampler, forced_foreground


def sparse_case(case_id="c", shape=(12, 48, 48)):
    seg = np.zeros(shape, np.int8)
    seg[5:7, 30:33, 10:13] = 1  # a tiny object: random patches mostly miss it
    seg[8, 5, 40] = 2
    locs = {label: np.argwhere(seg == label).astype(np.int32) for label in (1, 2)}
    data = np.random.default_rng(0).normal(size=(1,) + shape).astype(np.float32)
    return CaseArrays(case_id, data, seg, locs)


@pytest.mark.parametrize("batch,expected", [(1, [True]), (2, [False, True]), (3, [False, False, True]),
                                            (6, [False] * 4 + [True] * 2)])
def test_forced_foreground_is_a_third_and_at_least_one(batch, expected):
    assert forced_foreground(batch, 0.33) == expected


@pytest.mark.parametrize("patch", [(8, 16, 16), (16, 16)])
def test_sampler_delivers_the_promised_foreground_fraction(patch):
    sampler = PatchSampler([sparse_case()], patch, 3, 0.33)
    rng = np.random.default_rng(1)
    hits = np.zeros(3)
    n = 200
    for _ in range(n):
        batch = sampler.sample(rng)
        assert batch["data"].shape == (3, 1) + patch and batch["seg"].shape == (3, 1) + patch
        hits += [(s > 0).any() for s in batch["seg"]]
    assert hits[2] == n  # the forced sample always contains foreground
    assert hits[:2].mean() / n < 0.6  # random samples often miss the tiny object
    assert hits.sum() / (3 * n) >= 1 / 3


def test_sampler_pads_patches_larger_than_the_image():
    seg = np.zeros((4, 10, 10), np.int8)
    seg[2, 3:5, 3:5] = 1
    data = np.random.default_rng(0).normal(size=(1, 4, 10, 10)).astype(np.float32)
    case = CaseArrays("small", data, seg, {1: np.argwhere(seg == 1).astype(np.int32)})
    batch = PatchSampler([case], (8, 16, 16), 2, 0.33).sample(np.random.default_rng(0))
    assert batch["data"].shape == (2, 1, 8, 16, 16)
    for sample in batch["data"]:  # 4 slices inside 8: padding at the top, the bottom, or both
        assert (sample[:, 0] == 0).all() or (sample[:, -1] == 0).all()


def test_batch_stream_depends_only_on_seed_epoch_and_worker():
    sampler = PatchSampler([sparse_case()], (8, 16, 16), 2, 0.33)
    a, b = BatchStream(sampler, 3, 5), BatchStream(sampler, 3, 5)
    a.set_thread_id(1)
    b.set_thread_id(1)
    assert np.array_equal(next(a)["data"], next(b)["data"])
    c = BatchStream(sampler, 3, 6)
    c.set_thread_id(1)
    assert not np.array_equal(next(BatchStream(sampler, 3, 5))["data"], next(c)["data"])


@pytest.mark.parametrize("patch", [(16, 16), (8, 16, 16), (4, 32, 32)])
def test_augmentation_is_reproducible_with_a_seed(patch):
    params = augmentation_params(patch, tuple(range(len(patch))))
    assert params.dummy_2d == (patch == (4, 32, 32))
    big = enlarged_patch_size(patch, params)
    sampler = PatchSampler([sparse_case()], big, 2, 0.33)
    batch = sampler.sample(np.random.default_rng(0))
    transform = training_transforms(patch, params)

    def run(seed):
        np.random.seed(seed)
        return transform(**{k: v.copy() for k, v in batch.items()})

    first, again, other = run(7), run(7), run(8)
    assert first["data"].shape == (2, 1) + patch and first["seg"].shape == (2, 1) + patch
    assert np.array_equal(first["data"], again["data"]) and np.array_equal(first["seg"], again["seg"])
    assert not np.array_equal(first["data"], other["data"])
    assert set(np.unique(first["seg"])) <= {0, 1, 2}  # no -1 border value, no invented labels


def test_enlarged_patch_covers_rotation():
    params = augmentation_params((128, 128, 128), (0, 1, 2))
    assert enlarged_patch_size((128, 128, 128), params) == (206, 206, 206)
    dummy = augmentation_params((20, 160, 160), (0, 1, 2))
    assert dummy.dummy_2d and dummy.mirror_axes == (1, 2)
    assert enlarged_patch_size((20, 160, 160), dummy)[0] == 20  # no enlargement across slices
