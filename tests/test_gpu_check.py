"""The prepared GPU check skips cleanly on a machine without a CUDA GPU (every CI run checks it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: the check would measure")


def test_the_shell_script_says_there_is_no_gpu_and_exits_0(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                             "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU on this machine; nothing measured (skipped)" in done.stdout


def test_the_measuring_script_writes_that_it_skipped(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == {"skipped": "no CUDA GPU"}
