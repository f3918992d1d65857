"""What prediction records about each case for the run manifest: the seconds each step took and
the peak memory, measured where the work happens (torch is never imported here)."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

try:
    import resource
except ImportError:  # Windows: no getrusage
    resource = None  # type: ignore[assignment]


def peak_memory_mb() -> float | None:
    """The predicting process's peak resident memory so far, in MiB (None where unknown)."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB elsewhere


def reset_device_peak() -> Callable[[], float | None]:
    """Start measuring the GPU's peak memory for one case; the function returned reads it (MiB,
    None when no CUDA device is in use)."""
    torch = sys.modules.get("torch")  # only if a torch backend runs: the ONNX path does not import it
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return lambda: None
    torch.cuda.reset_peak_memory_stats()
    return lambda: round(torch.cuda.max_memory_allocated() / 2**20, 1)


@dataclass(frozen=True)
class CaseRecord:
    """One case in the run manifest: its input files, its output, the seconds spent preparing it
    (reading, preprocessing: in a worker, overlapping other cases), in the networks and writing
    it (exporting to the original geometry, postprocessing, files), and the peak memory of the
    predicting process up to its end (and of the GPU during its networks). A case-level model
    predicts cases in batches: each case gets its batch's seconds shared out, as ``predict_s``."""

    inputs: tuple[str, ...]
    output: str
    prepare_s: float
    predict_s: float
    write_s: float
    peak_memory_mb: float | None
    peak_gpu_memory_mb: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseTiming:
    """A case's measurements taken before it is written."""

    prepare_s: float
    predict_s: float
    peak_gpu_memory_mb: float | None

    def record(self, case: Any, output: Path, write_s: float, peak_mb: float | None) -> CaseRecord:
        """The case's record once it is written to ``output`` (``peak_mb``: the process's peak then)."""
        return CaseRecord(tuple(str(f) for f in case.inputs), str(output), round(self.prepare_s, 3),
                          round(self.predict_s, 3), round(write_s, 3), peak_mb, self.peak_gpu_memory_mb)
