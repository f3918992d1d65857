"""`autounet predict` on a folder (or one file): the cases found, this run's share of them, the
loaded model's task predicting them, and the run manifest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from autounet.inference.cases import check_not_input, find_cases, select_cases
from autounet.inference.settings import OutputOptions, PredictionReport
from autounet.predictor.loaded import LoadedModel
from autounet.predictor.manifest import check_report_path, write_manifest

log = logging.getLogger("autounet.inference")


def find_any_cases(inputs: Path, output: Path, output_format: str | None = None) -> tuple[list, dict[str, str]]:
    """The cases of ``inputs``: DICOM series (a folder holding DICOM files, masks written as
    ``output_format``: NIfTI by default, or a DICOM SEG), else image files named CASE_XXXX.ext."""
    from autounet.io.dicom import is_dicom_folder

    if inputs.is_dir() and is_dicom_folder(inputs):
        check_not_input(inputs, output)
        from autounet.inference.dicom_cases import find_dicom_cases

        return find_dicom_cases(inputs, output, output_format or "nifti")
    if output_format == "dicom-seg":
        raise ValueError(f"{inputs}: holds no DICOM series; a DICOM SEG references the DICOM series it segments, "
                         "so --output-format dicom-seg needs DICOM input")
    return find_cases(inputs, output)


def predict_folder(inputs: Path, load: Callable[[], LoadedModel], options: OutputOptions,
                   with_probabilities: bool = False, report_file: Path | None = None,
                   output_format: str | None = None) -> PredictionReport:
    """Predict the cases of ``inputs`` into ``options.output`` with the model ``load`` returns
    (called once the inputs are checked, so bad inputs fail before a slow load, and not at all
    when ``--continue`` finds every output complete and no manifest is asked for). With
    ``report_file``, the run manifest is written there."""
    inputs = Path(inputs)
    if report_file is not None:
        check_report_path(report_file, inputs)
    found, problems = find_any_cases(inputs, options.output, output_format)
    cases, problems, skipped = select_cases(found, problems, options, with_probabilities)
    said = ([f"part {options.part[0]} of {options.part[1]}: {len(cases) + len(skipped)} of {len(found)} case(s)"]
            if options.part else []) + ([f"{len(skipped)} complete already, kept (--continue)"] if skipped else [])
    if said:
        log.info("%s", "; ".join(said))
    if skipped and not cases and report_file is None:  # every output complete: no model to load
        log.info("nothing left to predict in %s", options.output)
        return PredictionReport(failed=dict(problems), skipped=sorted(skipped))
    loaded = load()
    report = loaded.task.predict(loaded.networks, loaded.source, cases, loaded.settings, options, loaded.postprocess)
    report.skipped = sorted(set(report.skipped) | set(skipped))
    done = len(report.cases)
    report.failed.update(problems)
    csv = [w for w in report.written if w.suffix == ".csv"]
    log.info("wrote %d prediction(s) to %s (%s)%s%s%s", done, csv[0] if csv else options.output,
             " + ".join(loaded.description["configurations"]), ", postprocessed" if loaded.postprocess else "",
             f"; {len(report.skipped)} kept from before" if report.skipped else "",
             f"; {len(report.failed)} input(s) failed" if report.failed else "")
    if report_file is not None:
        log.info("run manifest: %s", write_manifest(report_file, loaded, report, inputs, options))
    return report
