"""How to predict, in one object, and what happened to each case."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autounet.errors import AutounetError
from autounet.hardware import cpu_has_native_bf16
from autounet.inference.records import CaseRecord

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
ONNX_BACKENDS = ("onnxruntime", "openvino")  # run on the CPU, from an ONNX export

@dataclass(frozen=True)
class PredictSettings:
    """How to predict; `autounet predict` and training's final validation both take one.

    step : window step as a fraction of the patch (0.5: windows overlap by half).
    mirror : test-time mirroring over the axes the model was trained to mirror.
    device : "auto" (CUDA, then MPS, then the CPU), "cpu", "cuda", "cuda:N" or "mps".
    window_batch : windows per forward pass; None takes the plan's batch size, at most 8.
    amp : lower precision where it is faster: float16 autocast on CUDA; bfloat16 on CPUs that
        compute it natively (AVX512-BF16 or AMX) with the torch and OpenVINO backends. Off: float32.
    backend : what runs the network: "torch", "onnxruntime" or "openvino" (the last two on the
        CPU, from an ONNX export of the weights); "auto": torch for trained checkpoints, and for an
        ONNX model file OpenVINO when it is installed, else ONNX Runtime.
    save_probabilities : also write CASE.npz (probabilities) and CASE.json (geometry), which
        ensembling needs.
    processes : worker processes that read and preprocess the next cases (0: the main process).
    int8 : run the networks quantized to 8-bit integers with ONNX Runtime on the CPU (calibrated on
        the dataset's preprocessed training cases); for CPUs without native bfloat16.
    """

    step: float = 0.5
    mirror: bool = True
    device: str = "auto"
    window_batch: int | None = None
    amp: bool = True
    save_probabilities: bool = False
    processes: int = 1
    backend: str = "auto"
    int8: bool = False

    def __post_init__(self) -> None:
        if self.int8 and self.backend not in ("auto", "onnxruntime"):
            raise ValueError(f"--int8 runs with ONNX Runtime, not --backend {self.backend}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose {', '.join(BACKENDS)}")
        if not 0 < self.step <= 1:
            raise ValueError(f"the window step must be in (0, 1] (a fraction of the patch), got {self.step}")
        if self.window_batch is not None and self.window_batch < 1:
            raise ValueError(f"the window batch must be at least 1, got {self.window_batch}")
        if self.processes < 0:
            raise ValueError(f"the number of worker processes must be 0 or more, got {self.processes}")

    def cpu_bfloat16(self) -> bool:
        """Whether a network run on the CPU computes in bfloat16: amp on, and the CPU computes it
        natively (AVX512-BF16 or AMX); elsewhere bfloat16 is emulated and slower than float32."""
        return self.amp and not self.int8 and cpu_has_native_bf16()

    @property
    def runtime(self) -> str:
        """The backend asked for, with --int8's ONNX Runtime made explicit."""
        return "onnxruntime" if self.int8 else self.backend

    def check_cpu_only(self, what: str) -> None:
        """AutounetError when a CPU-only runtime (``what``) is asked to run on another device."""
        if self.device not in ("auto", "cpu"):
            raise AutounetError(f"{what} runs on the CPU; leave out --device {self.device}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PredictSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class OutputOptions:
    """Where predictions go and what happens to outputs that exist there.

    output : the folder (or, for one image, the file; for a case-level model a .csv file).
    overwrite : replace existing outputs (else a case whose output exists fails, naming it).
    resume : keep the outputs that are complete and predict only the other cases (``--continue``).
    part : (K, N): predict only the K-th of N shares of the cases (0 <= K < N), for split runs.
    """

    output: Path
    overwrite: bool = False
    resume: bool = False
    part: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.part is not None and not (self.part[1] >= 1 and 0 <= self.part[0] < self.part[1]):
            raise ValueError(f"--part {self.part[0]} --parts {self.part[1]}: the part must be from 0 to "
                             f"{self.part[1] - 1} (parts count from 0, as Slurm array task ids can)")


@dataclass
class PredictionReport:
    """What happened to each case: the files written, and why the others failed."""

    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # complete already and kept (--continue)
    cases: dict[str, CaseRecord] = field(default_factory=dict)  # each case predicted, for the run manifest
