"""The run manifest (``autounet predict --report run.json``): what produced each output.

One JSON file: the autounet version and time; the model (dataset or model file,
configurations, folds, checkpoint, whether postprocessing was applied, the weight files and one
SHA-256 over them); the device, CPU, backend and precision; the settings; the input and output,
and the part of a split run; and per case its input files, output, seconds (preparing, in the
networks, writing) and peak memory; the cases skipped as complete (``--continue``) and those that
failed, with the reason.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autounet.version import __version__
from autounet.hardware import cpu_model
from autounet.inference.settings import OutputOptions, PredictionReport
from autounet.io.atomic import check_writable, write_json
from autounet.predictor.loaded import LoadedModel


def manifest(loaded: LoadedModel, report: PredictionReport, inputs: Path, options: OutputOptions) -> dict[str, Any]:
    """The manifest of one prediction run (see the module docstring)."""
    return {
        "autounet_version": __version__,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {**loaded.description, "files": [str(f) for f in loaded.files], "sha256": loaded.sha256()},
        "device": loaded.device(), "cpu": cpu_model(), "host": platform.node(),
        "backend": loaded.backend(), "precision": loaded.precision(), "settings": loaded.settings.to_json(),
        "input": str(inputs), "output": str(options.output),
        "part": list(options.part) if options.part else None,
        "cases": {case_id: record.to_json() for case_id, record in sorted(report.cases.items())},
        "skipped": sorted(report.skipped), "failed": dict(sorted(report.failed.items())),
    }


def check_report_path(path: Path, inputs: Path) -> Path:
    """The manifest's path, refused before any work when it would land among the inputs or
    cannot be written."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"{path}: the run manifest is a JSON file; give its name a .json ending")
    if Path(inputs).is_dir() and path.resolve().parent == Path(inputs).resolve():
        raise ValueError(f"{path}: inside the input folder; write the run manifest elsewhere")
    check_writable(path.parent)
    return path


def write_manifest(path: Path, loaded: LoadedModel, report: PredictionReport, inputs: Path,
                   options: OutputOptions) -> Path:
    """Write the run manifest atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(path), manifest(loaded, report, inputs, options))
    return Path(path)
