"""Shared fixtures: tiny synthetic datasets written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet.example_data import make_example_dataset
from autounet.workspace import NNUNET_ENV, ROOT_ENV


@pytest.fixture(scope="session", autouse=True)
def _no_workspace_variables():
    """A developer's own AUTOUNET_ROOT or nnUNet_* variables must not move the tests' workspaces.
    Session-scoped, so that module-scoped fixtures and subprocesses see a clean environment too;
    a test that wants one sets it with monkeypatch.setenv."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (ROOT_ENV, *NNUNET_ENV.values()):
            patch.delenv(name, raising=False)
        yield


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
