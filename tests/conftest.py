"""Shared fixtures: tiny synthetic datasets written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet.example_data import make_example_dataset


@pytest.fixture
def tiny_3d(tmp_path: Path) -> Path:
    """6 anisotropic 2-channel NIfTI cases of about 10 x 24 x 24 voxels."""
    return make_example_dataset(tmp_path / "raw" / "Dataset001_Tiny3D", dims=3, cases=6, channels=2,
                                anisotropic=True, shape=(10, 24, 24), test_cases=1)


@pytest.fixture
def tiny_2d(tmp_path: Path) -> Path:
    """6 grayscale PNG cases of about 32 x 32 pixels."""
    return make_example_dataset(tmp_path / "raw" / "Dataset002_Tiny2D", dims=2, cases=6, channels=1,
                                shape=(32, 32), test_cases=1)


@pytest.fixture
def tiny_rgb(tmp_path: Path) -> Path:
    """6 RGB PNG cases (one 3-channel file each)."""
    return make_example_dataset(tmp_path / "raw" / "Dataset003_TinyRGB", dims=2, cases=6, channels=3,
                                shape=(32, 32), test_cases=1)
