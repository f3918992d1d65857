"""What the machine can do, as far as choosing defaults is concerned.

Rules (each a default; flags override):
- device: "auto" takes CUDA, then MPS, then the CPU (:func:`resolve_device`, the one place a
  device is chosen, for planning, training and prediction alike);
- memory target for planning: a CUDA GPU's memory minus a margin (10% and 0.5 GB for the
  framework); on a CPU 30% of the RAM, at most 8 GB, so that the training process, its
  augmentation workers and the system stay well inside it; never below 1 GB (less fits no network);
- augmentation workers: on a CPU half the cores (the network needs the others); on a GPU all
  cores but one, at most 12; never more than the RAM holds (about 0.75 GB each, 4 GB reserved);
- pinned memory: on CUDA when the machine has at least 16 GB of RAM.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass

from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path


CPU_RAM_FRACTION = 0.3
MAX_MEMORY_TARGET_GB = 8.0
MIN_MEMORY_TARGET_GB = 1.0  # below this not even a small network trains (see autoplan.memory)
GPU_MARGIN_FRACTION, GPU_MARGIN_GB = 0.10, 0.5
WORKER_RAM_GB, RESERVED_RAM_GB = 0.75, 4.0


@dataclass(frozen=True)
class HardwareInfo:
    """The device autounet would use and the host around it."""

    device: str                      # "cuda", "mps" or "cpu"
    device_name: str
    gpu_memory_gb: float | None
    cpu_cores: int
    ram_gb: float
    native_bf16: bool

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        gpu = f", {self.gpu_memory_gb:.1f} GB" if self.gpu_memory_gb else ""
        return (f"{self.device} ({self.device_name}{gpu}), {self.cpu_cores} CPU core(s), {self.ram_gb:.1f} GB RAM"
                f"{', native bf16' if self.native_bf16 and self.device == 'cpu' else ''}")


def ram_gb() -> float:
    """This machine's memory in GB (8 where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 8.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _accelerator_possible() -> bool:
    """Whether a CUDA or Apple GPU could be present (an NVIDIA driver, or macOS on arm64)."""
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists():
        return True
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def cpu_cores() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _device_type(device: str, files_first: bool) -> str:
    """"auto" -> "cuda", "mps" or "cpu", whichever is present first; other names unchanged.

    files_first : answer "cpu" without importing torch where no GPU driver is visible, so that
    planning on a CPU machine does not pay torch's start-up time."""
    if device != "auto":
        return device
    if files_first and not _accelerator_possible():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def resolve_device(name: str, local_rank: int = 0):
    """The torch device to compute on: "auto" (CUDA, then MPS, then the CPU), "cpu", "cuda",
    "cuda:N" or "mps"; ``local_rank`` picks the GPU of a data-parallel process. Raises ValueError
    when the device asked for is not there."""
    import torch

    kind, _, index = str(name).partition(":")
    kind = _device_type(kind, files_first=False)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available")
        return torch.device("cuda", int(index) if index else local_rank)
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available")
    if kind not in ("cpu", "mps"):
        raise ValueError(f"device '{name}' is not one of auto, cpu, cuda, cuda:N, mps")
    return torch.device(kind)


def detect_hardware(device: str = "auto") -> HardwareInfo:
    """The device ("auto": CUDA, then MPS, then CPU) and the host's cores and RAM."""
    name, gpu_gb = cpu_model(), None
    device = _device_type(device, files_first=True)
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            name, gpu_gb = props.name, props.total_memory / 1024**3
    return HardwareInfo(device, name, gpu_gb, cpu_cores(), round(ram_gb(), 2), cpu_has_native_bf16())


def memory_target_gb(hw: HardwareInfo) -> float:
    """Memory to plan patch and batch size for (see the module rules)."""
    if hw.device == "cuda" and hw.gpu_memory_gb:
        return round(max(MIN_MEMORY_TARGET_GB, hw.gpu_memory_gb * (1 - GPU_MARGIN_FRACTION) - GPU_MARGIN_GB), 2)
    return round(max(MIN_MEMORY_TARGET_GB, min(MAX_MEMORY_TARGET_GB, hw.ram_gb * CPU_RAM_FRACTION)), 2)


def data_loading(hw: HardwareInfo) -> tuple[int, bool]:
    """(augmentation workers, pin memory) for this machine."""
    workers = max(1, hw.cpu_cores // 2) if hw.device == "cpu" else max(1, min(12, hw.cpu_cores - 1))
    by_ram = int((hw.ram_gb - RESERVED_RAM_GB) // WORKER_RAM_GB)
    return max(1, min(workers, by_ram)), hw.device == "cuda" and hw.ram_gb >= 16


def user_cache() -> Path:
    """This user's cache of what is measured or derived once per machine and reused (training's
    speed calibration, int8 networks): ``$AUTOUNET_CACHE`` if set, else ``~/.cache/autounet``."""
    return Path(os.environ.get("AUTOUNET_CACHE") or Path.home() / ".cache" / "autounet")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast
    speeds up convolutions (measured 2.4x per 3D training step on AVX512-BF16); elsewhere it
    would be emulated and slower, so autounet stays in float32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_int8_may_saturate() -> bool:
    """True on x86 CPUs without VNNI (AVX512-VNNI or AVX-VNNI), whose 8-bit dot products sum pairs
    into 16 bits and can overflow with full-range int8 weights (their int8 networks use 7-bit
    weights); also where the flags cannot be read on an x86 machine."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return not cpu_flags() & {"avx512_vnni", "avx_vnni"}


def autocast_for(device, enabled: bool):
    """Mixed precision: float16 on CUDA; bfloat16 on CPUs that compute it natively; else none."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if enabled and device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()
