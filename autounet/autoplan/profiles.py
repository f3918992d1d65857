"""Plans from a dataset's published description, without its images.

A profile gives what papers and challenge pages report about a dataset: median shape and
spacing (z, y, x), channel names, labels and the number of training cases. The fingerprint built
from it has every case at the median, so it answers "what would autounet plan for data like
this" (and lets the planner be compared with nnU-Net's on datasets that are not at hand:
``benchmarks/compare_plan_profiles.py``). Intensity statistics are placeholders: they set
normalization parameters, never shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autounet.autoplan.planner import PlannerSettings, plan_dataset
from autounet.autoplan.plans import CaseFingerprint, Fingerprint, IntensityStats, Plans
from autounet.io.dataset_json import DatasetSpec

PLACEHOLDER_STATS = IntensityStats(mean=100.0, median=90.0, std=50.0, min=-1000.0, max=3000.0,
                                   percentile_00_5=-100.0, percentile_99_5=400.0, num_samples=0)


def profile_inputs(profile: dict[str, Any]) -> tuple[Fingerprint, DatasetSpec]:
    """The fingerprint and dataset description a profile stands for."""
    shape = tuple(int(v) for v in profile["median_shape"])
    spacing = tuple(float(v) for v in profile["median_spacing"])
    channels = tuple(profile["channel_names"])
    n = int(profile["num_training"])
    cases = tuple(CaseFingerprint(f"case_{i:04d}", spacing, shape, shape) for i in range(n))  # type: ignore[arg-type]
    fp = Fingerprint(profile["name"], 3, channels, cases, (PLACEHOLDER_STATS,) * len(channels), 1.0)
    spec = DatasetSpec(path=Path(profile["name"]), name=profile["name"], channel_names=channels,
                       labels=dict(profile["labels"]), num_training=n, file_ending=".nii.gz", reader="simpleitk")
    return fp, spec


def plan_profile(profile: dict[str, Any], memory_target_gb: float = 8.0) -> Plans:
    """What autounet plans for a dataset described by ``profile``."""
    fp, spec = profile_inputs(profile)
    return plan_dataset(fp, spec, PlannerSettings(memory_target_gb=memory_target_gb))
