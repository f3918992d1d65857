"""The Python API behind every command: a notebook can do what the CLI does.

>>> from autounet import api
>>> api.make_example_dataset("raw/Dataset900_Example", dims=3)
>>> plans = api.plan_and_preprocess("Dataset900_Example")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from autounet.autoplan.fingerprint import extract_fingerprint, source_signature
from autounet.autoplan.planner import PlannerSettings, plan_dataset
from autounet.autoplan.plans import Fingerprint, Plans, load_fingerprint
from autounet.autoplan.splits import ensure_splits
from autounet.autoplan.summary import format_plan_summary
from autounet.example_data import make_example_dataset
from autounet.io.atomic import write_json
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.verify import check_layout, verify_dataset as _verify
from autounet.parallel import default_processes
from autounet.preprocess.pipeline import preprocess_dataset
from autounet.workspace import DatasetPaths, resolve_dataset

__all__ = ["make_example_dataset", "verify_dataset", "plan_and_preprocess", "fingerprint_dataset", "train", "predict"]

log = logging.getLogger("autounet")


def verify_dataset(dataset: str | Path, root: Path | None = None, processes: int | None = None) -> int:
    """Check a raw dataset completely; returns the number of cases, raises listing every problem."""
    paths = resolve_dataset(dataset, root)
    _, cases = _verify(paths.raw, processes or default_processes())
    return len(cases)


def fingerprint_dataset(paths: DatasetPaths, layout: tuple[DatasetSpec, list[CaseFiles]], processes: int,
                        seed: int = 0, force: bool = False) -> Fingerprint:
    """The dataset's fingerprint: reused when the raw files have not changed, else computed
    (which verifies every case) and written."""
    spec, cases = layout
    if paths.fingerprint.is_file() and not force:
        try:
            old = load_fingerprint(paths.fingerprint)
        except (ValueError, KeyError, TypeError):
            old = None
        if old is not None and old.seed == seed and old.source_signature == source_signature(spec, cases):
            log.info("raw files unchanged since %s: reusing it (verification passed then)", paths.fingerprint)
            return old
    fp = extract_fingerprint(paths.raw, processes, seed, layout)
    write_json(paths.fingerprint, fp.to_json())
    return fp


def plan_and_preprocess(dataset: str | Path, root: Path | None = None, processes: int | None = None,
                        gpu_memory_gb: float = 8.0, configurations: Sequence[str] | None = None,
                        force: bool = False, seed: int = 0, splits_file: Path | None = None,
                        preprocess: bool = True, network: str = "plain") -> Plans:
    """Verify, fingerprint, plan, split and preprocess a dataset. Resumable; returns the plans.

    dataset : id, name, or raw folder path. configurations : subset of the planned ones to
    preprocess (default all). force : redo the fingerprint and every case.
    """
    paths = resolve_dataset(dataset, root)
    processes = processes or default_processes()
    layout = check_layout(paths.raw, processes)
    fp = fingerprint_dataset(paths, layout, processes, seed, force)
    plans = plan_dataset(fp, layout[0], PlannerSettings(memory_target_gb=gpu_memory_gb, block=network))
    write_json(paths.plans, plans.to_json())
    ensure_splits(paths.splits, [c.case_id for c in layout[1]], seed=seed, user_file=splits_file)
    unknown = sorted(set(configurations or ()) - set(plans.configurations))
    if unknown:
        raise ValueError(f"configuration(s) {unknown} are not in the plan; planned: {sorted(plans.configurations)}")
    if preprocess:
        stats = preprocess_dataset(layout[0], layout[1], plans, paths.preprocessed,
                                   list(configurations) if configurations else None, processes, force, seed)
        log.info("preprocessed %d case(s), %d already done, into %s", stats["done"], stats["skipped"],
                 paths.preprocessed)
    log.info("%s", format_plan_summary(plans))
    return plans


def train(dataset: str | Path, configuration: str, fold: int | str, root: Path | None = None,
          config: "TrainingConfig | None" = None, device: str = "auto", resume: bool = False) -> Path:
    """Train one fold (0..4 or "all") of a planned configuration; returns the fold folder.

    resume : continue from checkpoint_latest after an interruption (``--continue``).
    """
    from autounet.training.config import TrainingConfig
    from autounet.training.trainer import train_fold

    return train_fold(resolve_dataset(dataset, root), configuration, fold, config or TrainingConfig(), device, resume)


def _model_folder(dataset: str | Path | None, configuration: str | None, model: Path | None, root: Path | None
                  ) -> tuple[Path, str]:
    """The results folder holding the configurations, and the configuration to use."""
    from autounet.errors import WorkspaceError
    from autounet.inference.portable import import_model

    if model is not None:
        import tempfile

        target = Path(tempfile.mkdtemp(prefix="autounet_model_"))
        info = import_model(model, target)
        return target, configuration or info["configuration"]
    if dataset is None:
        raise WorkspaceError("say which model to use: -d DATASET (trained in this workspace) or -m MODEL.zip")
    paths = resolve_dataset(dataset, root)
    if configuration is None:
        best = paths.results / "best_configuration.json"
        if not best.is_file():
            raise WorkspaceError(f"no {best}: run `autounet find_best_configuration {paths.name}` or pass -c CONFIG")
        from autounet.io.atomic import read_json

        configuration = read_json(best)["configuration"]
    return paths.results, configuration


def predict(inputs: str | Path, output: str | Path, dataset: str | Path | None = None,
            configuration: str | None = None, folds: Sequence[str] | None = None, model: Path | None = None,
            root: Path | None = None, device: str = "auto", mirror: bool = True, step: float = 0.5,
            save_probabilities: bool = False, checkpoint: str = "final", processes: int = 1, amp: bool = True):
    """Predict a folder of images (or one image file); returns a PredictionReport.

    The model comes from a dataset's trained folds (``dataset`` + ``configuration``, default the
    chosen best configuration) or from an exported ``model`` zip.
    """
    from autounet.inference.model import load_trained_model
    from autounet.inference.predict import PredictSettings, Predictor, find_inputs, predict_cases
    from autounet.training.trainer import resolve_device

    results, configuration = _model_folder(dataset, configuration, model, root)
    trained = load_trained_model(results / configuration, folds, checkpoint)
    dev = resolve_device(device)
    settings = PredictSettings(mirror=mirror, step=step, save_probabilities=save_probabilities, processes=processes,
                               amp=amp)
    previous = None
    prev_name = trained.stage.previous_stage
    if prev_name:
        previous = Predictor(load_trained_model(results / prev_name, list(trained.fold_weights), checkpoint), dev, settings)
    predictor = Predictor(trained, dev, settings, previous)
    inputs, output = Path(inputs), Path(output)
    if inputs.is_file():
        cases, problems = find_inputs(inputs.parent, output.parent if output.suffix else output)
        cases = [c for c in cases if inputs in c.files]
        if output.suffix and cases:
            from dataclasses import replace

            cases = [replace(cases[0], output=output)]
    else:
        if not inputs.is_dir():
            raise FileNotFoundError(f"{inputs}: no such file or folder")
        cases, problems = find_inputs(inputs, output)
    if not cases:
        raise ValueError(f"{inputs}: no input images named CASE_XXXX.ext found")
    output.parent.mkdir(parents=True, exist_ok=True) if output.suffix else output.mkdir(parents=True, exist_ok=True)
    report = predict_cases(predictor, cases)
    report.failed.update(problems if not inputs.is_file() else {})
    log.info("wrote %d prediction(s) to %s (%s, folds %s)%s", len(report.written), output, configuration,
             " ".join(trained.fold_weights), f"; {len(report.failed)} input(s) failed" if report.failed else "")
    return report
