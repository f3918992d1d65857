"""Sparsely annotated data (an ignore label): patches are drawn where the labels are."""

import numpy as np
import pytest

from autounet import api
from autounet.example_data import VIDEO_LABELS, make_video_dataset
from autounet.training.data import PatchSampler, open_case
from autounet.workspace import PreprocessedCase, dataset_paths, preprocessed_case_ids

IGNORE = VIDEO_LABELS["ignore"]


@pytest.fixture(scope="module")
def video_cases(tmp_path_factory):
    """The video-like example: 32 frames, end-diastole and end-systole labelled, 2d preprocessed."""
    root = tmp_path_factory.mktemp("ws")
    make_video_dataset(root / "raw" / "Dataset981_Video", cases=4, frames=32, size=(48, 48))
    plans = api.plan_and_preprocess("981", root=root, processes=1, configurations=["2d"], gpu_memory_gb=2)
    folder = dataset_paths(root, "Dataset981_Video").data_folder(plans.configurations["2d"].data_identifier)
    return plans, [open_case(PreprocessedCase(folder, c)) for c in preprocessed_case_ids(folder)]


def annotated_share(sampler: PatchSampler, batches: int = 100) -> float:
    rng = np.random.default_rng(0)
    seg = np.concatenate([sampler.sample(rng)["seg"][:, 0] for _ in range(batches)])
    return float(np.mean([(s != IGNORE).any() for s in seg]))


def test_background_locations_are_recorded_for_sparse_data(video_cases):
    plans, cases = video_cases
    assert plans.ignore_label == IGNORE
    for case in cases:
        assert set(case.locations) == {0, 1}
        assert all(case.seg[tuple(loc)] != IGNORE for locs in case.locations.values() for loc in locs)


def test_2d_samples_hold_annotated_voxels(video_cases):
    plans, cases = video_cases
    patch, batch = plans.configurations["2d"].patch_size, plans.configurations["2d"].batch_size
    share = annotated_share(PatchSampler(cases, patch, batch, 0.33, plans.ignore_label))
    # placed at random, only the forced foreground third would (2 of 32 frames are labelled)
    blind = annotated_share(PatchSampler(cases, patch, batch, 0.33))
    assert share >= 0.95
    assert blind < 0.6


def test_padding_outside_the_image_is_ignore_not_background(video_cases):
    plans, cases = video_cases
    sampler = PatchSampler(cases[:1], (96, 96), 4, 0.5, plans.ignore_label)
    seg = sampler.sample(np.random.default_rng(0))["seg"][:, 0]
    # the 48 x 48 frames sit inside 96 x 96 patches: at least three quarters of each is padding
    assert all((s == IGNORE).mean() >= 0.75 for s in seg)
    assert (PatchSampler(cases[:1], (96, 96), 4, 0.5).sample(np.random.default_rng(0))["seg"][:, 0] == 0).any()
