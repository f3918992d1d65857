"""Real dataset shapes give nnU-Net's configurations, patches and batches (issue 14).

The profiles (median shape, spacing, channels, classes, cases of 17 public datasets, with sources)
are ``benchmarks/plan_profiles.json``; what nnU-Net 2.8.1 plans for the same fingerprints was
recorded in ``nnunet_profile_plans.json`` by ``benchmarks/compare_plan_profiles.py``.
"""

import json
from pathlib import Path

import pytest

from autounet.autoplan.profiles import plan_profile

HERE = Path(__file__).parent
PROFILES = {p["name"]: p for p in json.loads((HERE.parents[1] / "benchmarks" / "plan_profiles.json").read_text())}
NNUNET = json.loads((HERE / "nnunet_profile_plans.json").read_text())["plans"]
# Where memory, not the 5% dataset cap, sets the batch, autounet takes the largest batch that fits its
# estimate and nnU-Net rounds (possibly up): see benchmarks/plan_comparison.md.
OUR_BATCH = {("MSD01_BrainTumour", "2d"): 50, ("BraTS2021", "2d"): 50, ("ACDC", "2d"): 60, ("ACDC", "3d_fullres"): 6}


def test_every_profile_is_covered():
    assert set(PROFILES) == set(NNUNET) and len(PROFILES) >= 12


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_plans_like_nnunet(name):
    plans = plan_profile(PROFILES[name]).to_json()
    expected = NNUNET[name]
    assert sorted(plans["configurations"]) == expected["configurations"]
    for config in ("2d", "3d_fullres", "3d_lowres"):
        if config not in expected:
            continue
        ours = plans["configurations"][config]
        assert list(ours["patch_size"]) == expected[config]["patch"], config
        assert ours["batch_size"] == OUR_BATCH.get((name, config), expected[config]["batch"]), config
