"""Defaults chosen from the machine: memory target, data-loading workers, pinned memory, and
what plan_and_preprocess records about them (a stand-in device: no GPU is needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.hardware import HardwareInfo, data_loading, detect_hardware, memory_target_gb
from autounet.preprocess import prepare


def _hw(device: str, gpu_gb: float | None = None, cores: int = 2, ram_gb: float = 24.0) -> HardwareInfo:
    return HardwareInfo(device, "stand-in", gpu_gb, cores, ram_gb, native_bf16=False)


@pytest.mark.parametrize("gpu_gb, target", [(24.0, 21.1), (80.0, 71.5), (8.0, 6.7), (1.0, 1.0)])
def test_cuda_target_is_the_cards_memory_minus_a_margin(gpu_gb: float, target: float):
    assert memory_target_gb(_hw("cuda", gpu_gb)) == pytest.approx(target)


@pytest.mark.parametrize("ram_gb, target", [(24.0, 7.2), (4.0, 1.2), (128.0, 8.0)])
def test_cpu_target_stays_well_inside_the_ram(ram_gb: float, target: float):
    assert memory_target_gb(_hw("cpu", ram_gb=ram_gb)) == pytest.approx(target)


@pytest.mark.parametrize("hw, expected", [
    (_hw("cpu", cores=2, ram_gb=24.0), (1, False)),          # this CI machine: the network needs the other core
    (_hw("cpu", cores=16, ram_gb=64.0), (8, False)),
    (_hw("cuda", 24.0, cores=16, ram_gb=128.0), (12, True)),  # at most 12 workers; pinned memory
    (_hw("cuda", 24.0, cores=16, ram_gb=8.0), (5, False)),    # RAM limits workers: (8 - 4) // 0.75; no pinning
    (_hw("cuda", 24.0, cores=4, ram_gb=3.0), (1, False)),     # never fewer than one
])
def test_data_loading_follows_cores_and_ram(hw: HardwareInfo, expected: tuple[int, bool]):
    assert data_loading(hw) == expected


def test_detect_hardware_on_cpu_reports_this_host():
    hw = detect_hardware("cpu")
    assert hw.device == "cpu" and hw.gpu_memory_gb is None
    assert hw.cpu_cores >= 1 and hw.ram_gb > 0
    assert "CPU core" in hw.describe()


def test_plan_records_the_detected_gpu_and_the_override(tiny_3d: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(prepare, "detect_hardware", lambda device="auto": _hw("cuda", 24.0, cores=8, ram_gb=64.0))
    root = tmp_path / "ws"
    detected = api.plan_and_preprocess(tiny_3d, root=root, processes=1, preprocess=False)
    assert detected.hardware["device"] == "cuda" and detected.hardware["gpu_memory_gb"] == 24.0
    assert detected.hardware["memory_target_gb"] == pytest.approx(21.1)
    assert detected.hardware["memory_target_source"] == "detected"

    overridden = api.plan_and_preprocess(tiny_3d, root=root, processes=1, preprocess=False, gpu_memory_gb=4.0)
    assert overridden.hardware["memory_target_gb"] == 4.0
    assert overridden.hardware["memory_target_source"] == "--gpu-memory-gb"
    on_disk = load_plans(root / "preprocessed" / tiny_3d.name / "plans.json")
    assert on_disk.hardware == overridden.hardware


def test_the_user_cache_follows_autounet_cache(monkeypatch, tmp_path):
    from autounet.hardware import user_cache

    monkeypatch.setenv("AUTOUNET_CACHE", str(tmp_path / "a"))
    assert user_cache() == tmp_path / "a"
    monkeypatch.setenv("AUTOUNET_CACHE", str(tmp_path / "b"))  # read each time, not once per process
    assert user_cache() == tmp_path / "b"
    monkeypatch.delenv("AUTOUNET_CACHE")
    assert user_cache() == Path.home() / ".cache" / "autounet"


@pytest.mark.parametrize("machine,flags,saturates", [
    ("x86_64", {"avx2", "avx512bw"}, True),              # 8-bit dot products through 16-bit sums
    ("x86_64", {"avx2", "avx512bw", "avx512_vnni"}, False),
    ("x86_64", {"avx2", "avx_vnni"}, False),
    ("x86_64", set(), True),                             # flags unknown: the safe choice
    ("aarch64", set(), False),
])
def test_int8_gets_7_bit_weights_only_on_x86_cpus_without_vnni(monkeypatch, machine, flags, saturates):
    from autounet import hardware

    monkeypatch.setattr(hardware.platform, "machine", lambda: machine)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    assert hardware.cpu_int8_may_saturate() is saturates
