"""The Python API behind every command: a notebook can do what the CLI does.

>>> from autounet import api
>>> api.make_example_dataset("raw/Dataset900_Example", dims=3)
>>> plans = api.plan_and_preprocess("Dataset900_Example")
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from autounet.autoplan.fingerprint import extract_fingerprint, source_signature
from autounet.autoplan.planner import PlannerSettings, plan_dataset
from autounet.autoplan.plans import Fingerprint, Plans, load_fingerprint
from autounet.autoplan.splits import ensure_splits
from autounet.autoplan.summary import format_plan_summary
from autounet.example_data import make_example_dataset
from autounet.hardware import detect_hardware, memory_target_gb
from autounet.io.atomic import write_json
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.verify import check_layout, verify_dataset as _verify
from autounet.parallel import default_processes
from autounet.preprocess.pipeline import preprocess_dataset
from autounet.workspace import DatasetPaths, resolve_dataset

__all__ = ["make_example_dataset", "verify_dataset", "plan_and_preprocess", "fingerprint_dataset", "train", "predict",
           "find_best_configuration", "evaluate", "apply_postprocessing", "report", "demo"]

if TYPE_CHECKING:
    from autounet.training.config import TrainingConfig

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
                        gpu_memory_gb: float | None = None, configurations: Sequence[str] | None = None,
                        force: bool = False, seed: int = 0, splits_file: Path | None = None,
                        preprocess: bool = True, network: str = "plain", device: str = "auto") -> Plans:
    """Verify, fingerprint, plan, split and preprocess a dataset. Resumable; returns the plans.

    dataset : id, name, or raw folder path. configurations : subset of the planned ones to
    preprocess (default all). force : redo the fingerprint and every case. gpu_memory_gb : the
    memory to plan for; None reads it from the device present (see autounet.hardware).
    """
    paths = resolve_dataset(dataset, root)
    processes = processes or default_processes()
    layout = check_layout(paths.raw, processes)
    fp = fingerprint_dataset(paths, layout, processes, seed, force)
    hw = detect_hardware(device)
    target = gpu_memory_gb if gpu_memory_gb is not None else memory_target_gb(hw)
    plans = plan_dataset(fp, layout[0], PlannerSettings(memory_target_gb=target, block=network))
    plans = dataclasses.replace(plans, hardware={
        **hw.to_json(), "memory_target_gb": target,
        "memory_target_source": "--gpu-memory-gb" if gpu_memory_gb is not None else "detected"})
    log.info("hardware: %s; planning for %.1f GB (%s)", hw.describe(), target,
             "set with --gpu-memory-gb" if gpu_memory_gb is not None else "detected")
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


@dataclass(frozen=True)
class ModelSource:
    """Where a model's configurations live, which to use (several = ensemble), and its postprocessing."""

    results: Path
    configurations: tuple[str, ...]
    postprocessing: Path | None
    folds: tuple[str, ...] | None = None


def resolve_model(dataset: str | Path | None, configurations: Sequence[str] | None, model: Path | None,
                  root: Path | None) -> ModelSource:
    """An exported zip (unpacked to a temporary folder), or a dataset's results: the configurations
    asked for, else the chosen best configuration (with its postprocessing)."""
    from autounet.errors import WorkspaceError
    from autounet.inference.portable import import_model
    from autounet.io.atomic import read_json

    if model is not None:
        import tempfile

        target = Path(tempfile.mkdtemp(prefix="autounet_model_"))
        info = import_model(model, target)
        pp = target / "postprocessing.json"
        return ModelSource(target, tuple(configurations or info["configurations"]), pp if pp.is_file() else None,
                           tuple(info["folds"]))
    if dataset is None:
        raise WorkspaceError("say which model to use: -d DATASET (trained in this workspace) or -m MODEL.zip")
    paths = resolve_dataset(dataset, root)
    if configurations:
        return ModelSource(paths.results, tuple(configurations), None)
    best = paths.results / "best_configuration.json"
    if not best.is_file():
        raise WorkspaceError(f"no {best}: run `autounet find_best_configuration {paths.name}` or pass -c CONFIG")
    chosen = read_json(best)
    pp = paths.results / chosen.get("postprocessing", "postprocessing.json")
    return ModelSource(paths.results, tuple(chosen["configurations"]), pp if pp.is_file() else None)


def _find_cases(inputs: Path, output: Path):
    from dataclasses import replace

    from autounet.inference.predict import find_inputs

    if inputs.is_file():
        cases, _ = find_inputs(inputs.parent, output.parent if output.suffix else output)
        cases = [c for c in cases if inputs in c.files]
        if output.suffix and cases:
            cases = [replace(cases[0], output=output)]
        problems: dict[str, str] = {}
    elif inputs.is_dir():
        cases, problems = find_inputs(inputs, output)
    else:
        raise FileNotFoundError(f"{inputs}: no such file or folder")
    if not cases:
        raise ValueError(f"{inputs}: no input images named CASE_XXXX.ext found")
    return cases, problems


def _finish_ensemble(reports, cases, folders: list[Path], post, save_probabilities: bool):
    """Average the configurations' probabilities and write each case's mask (postprocessed)."""
    from autounet.inference.ensemble import ensemble_folders
    from autounet.inference.predict import PredictionReport
    from autounet.io.image_io import read_segmentation, reader_for, write_segmentation

    report = PredictionReport(failed={k: v for r in reports for k, v in r.failed.items()})
    merged = folders[0].parent / "ensemble"
    ensemble_folders(folders, merged, save_probabilities)
    for case in cases:
        source = merged / f"{case.case_id}{case.ending}"
        if not source.is_file():
            continue
        if post is not None:
            seg, geometry = read_segmentation(source, reader_for(case.ending))
            write_segmentation(post(seg), geometry, case.output)
        else:
            shutil.move(source, case.output)
        stem = case.output.name[: -len(case.ending)]
        for ext in (".npz", ".json") if save_probabilities else ():
            shutil.move(merged / f"{case.case_id}{ext}", case.output.with_name(stem + ext))
        report.written.append(case.output)
    return report


def predict(inputs: str | Path, output: str | Path, dataset: str | Path | None = None,
            configurations: Sequence[str] | None = None, folds: Sequence[str] | None = None, model: Path | None = None,
            root: Path | None = None, device: str = "auto", mirror: bool = True, step: float = 0.5,
            save_probabilities: bool = False, checkpoint: str = "final", processes: int = 1, amp: bool = True,
            postprocessing: bool = True):
    """Predict a folder of images (or one image file); returns a PredictionReport.

    The model comes from a dataset's trained folds (the ``configurations`` given, else the chosen
    best configuration or ensemble, with its postprocessing) or from an exported ``model`` zip.
    """
    import tempfile
    from dataclasses import replace

    from autounet.inference.model import load_trained_model
    from autounet.inference.predict import PredictSettings, Predictor, predict_cases
    from autounet.postprocess.components import apply_postprocessing
    from autounet.postprocess.selection import load_rules
    from autounet.training.trainer import resolve_device

    source = resolve_model(dataset, configurations, model, root)
    folds = folds or source.folds
    rules = load_rules(source.postprocessing) if postprocessing and source.postprocessing else None
    post = (lambda seg: apply_postprocessing(seg, rules)) if rules is not None and not rules.is_identity else None
    dev = resolve_device(device)
    inputs, output = Path(inputs), Path(output)
    cases, problems = _find_cases(inputs, output)
    (output.parent if output.suffix else output).mkdir(parents=True, exist_ok=True)
    ensemble = len(source.configurations) > 1
    with tempfile.TemporaryDirectory(prefix="autounet_ensemble_") as tmp:
        reports = []
        for configuration in source.configurations:
            trained = load_trained_model(source.results / configuration, folds, checkpoint)
            settings = PredictSettings(mirror=mirror, step=step, save_probabilities=save_probabilities or ensemble,
                                       processes=processes, amp=amp)
            previous = None
            if trained.stage.previous_stage:
                prev = load_trained_model(source.results / trained.stage.previous_stage, list(trained.fold_weights),
                                          checkpoint)
                previous = Predictor(prev, dev, settings)
            todo = [replace(c, output=Path(tmp) / configuration / c.output.name) for c in cases] if ensemble else cases
            reports.append(predict_cases(Predictor(trained, dev, settings, previous), todo, None if ensemble else post))
            log.info("%s: folds %s", configuration, " ".join(trained.fold_weights))
        report = reports[0]
        if ensemble:
            report = _finish_ensemble(reports, cases, [Path(tmp) / c for c in source.configurations], post,
                                      save_probabilities)
    report.failed.update(problems)
    log.info("wrote %d prediction(s) to %s (%s)%s%s", len(report.written), output, " + ".join(source.configurations),
             ", postprocessed" if post else "", f"; {len(report.failed)} input(s) failed" if report.failed else "")
    return report


def find_best_configuration(dataset: str | Path, root: Path | None = None, configurations: Sequence[str] | None = None,
                            ensembles: bool = True, processes: int | None = None) -> dict:
    """Pick the best configuration or pair ensemble on the cross-validation and its postprocessing;
    writes results/DATASET/{cross_validation,best_configuration,postprocessing}.json."""
    from autounet.postprocess.find_best import find_best_configuration as _find, format_table

    paths = resolve_dataset(dataset, root)
    result = _find(paths, configurations, ensembles, processes or default_processes())
    rules = result["postprocessing"]["rules"]
    log.info("cross-validation (%s):\n%s", paths.name, format_table(result))
    log.info("best: %s; postprocessing: %s; foreground-mean Dice %.4f -> %.4f after postprocessing",
             result["best"], _describe_rules(rules), result["entries"][result["best"]]["foreground_mean_dice"],
             result["foreground_mean_dice_after_postprocessing"])
    log.info("predict with: %s", result["predict_command"])
    return result


def _describe_rules(rules: dict) -> str:
    parts = []
    if rules.get("keep_largest_foreground"):
        parts.append("keep the largest foreground component")
    for c in rules.get("keep_largest_per_class", []):
        parts.append(f"keep the largest component of class {c}")
    return "; ".join(parts) or "none"


def evaluate(reference: str | Path, prediction: str | Path, output: Path | None = None,
             nsd_tolerance: float = 1.0, processes: int | None = None) -> dict:
    """Per-case, per-class metrics of a prediction folder against a reference folder."""
    from autounet.postprocess.evaluate import evaluate_folders

    return evaluate_folders(Path(reference), Path(prediction), nsd_tolerance=nsd_tolerance,
                            processes=processes or default_processes(), output=output)


def apply_postprocessing(inputs: str | Path, output: str | Path, rules_file: str | Path,
                         processes: int | None = None) -> list[Path]:
    """Apply a postprocessing.json to every mask of a folder."""
    from autounet.postprocess.selection import apply_postprocessing_to_folder, load_rules

    return apply_postprocessing_to_folder(Path(inputs), Path(output), load_rules(Path(rules_file)),
                                          processes or default_processes())


def report(dataset: str | Path, root: Path | None = None, output: Path | None = None) -> Path:
    """Write the HTML report of a dataset (plan, training curves, CV table, postprocessing, overlays)."""
    from autounet.postprocess.report import write_report

    return write_report(resolve_dataset(dataset, root), output)


def demo(root: Path | None = None, configurations: Sequence[str] = ("2d", "3d_fullres"), folds: int = 5,
         time_budget_s: float | None = 240.0, epochs: int | None = None, iterations_per_epoch: int | None = None,
         device: str = "auto") -> dict:
    """The whole pipeline on a generated example dataset; resumable.

    make_example_dataset -> plan_and_preprocess -> train (folds x configurations) ->
    find_best_configuration -> predict the held-out test images -> evaluate -> report.
    The training time is ``time_budget_s`` in all, shared over the folds: each fold gets the time
    still left divided by the folds still to train, and fits its schedule to this machine. A fold
    whose share does not fit one epoch (a slow or busy machine) gets the time one epoch needs
    instead, so that the demo always finishes. Or give ``epochs`` and ``iterations_per_epoch``.
    """
    from autounet.training.budget import BudgetTooSmall
    from autounet.training.config import TrainingConfig
    from autounet.workspace import default_root

    root = Path(root) if root is not None else default_root()
    raw = root / "raw" / "Dataset900_Example"
    if not (raw / "dataset.json").is_file():
        make_example_dataset(raw, dims=3, cases=20, channels=1, anisotropic=True, shape=(16, 48, 48), test_cases=5)
    plan_and_preprocess(raw, root=root)
    fixed = epochs is not None or iterations_per_epoch is not None or time_budget_s is None
    config = TrainingConfig(epochs=epochs or 4, iterations_per_epoch=iterations_per_epoch or 12,
                            val_iterations_per_epoch=2, save_probabilities=True)
    if not fixed:
        log.info("demo: %.0f s of training in all, shared over %d folds", time_budget_s, len(configurations) * folds)
    jobs = [(c, f) for c in configurations for f in range(folds)]
    started = time.monotonic()
    for i, (configuration, fold) in enumerate(jobs):
        if not fixed:
            share = max(0.0, time_budget_s - (time.monotonic() - started)) / (len(jobs) - i)
            config = TrainingConfig(time_budget_s=share, save_probabilities=True)
        try:
            train(raw, configuration, fold, root=root, config=config, device=device, resume=True)
        except BudgetTooSmall as e:
            log.warning("demo: %s fold %d: %s; giving it %.0f s instead", configuration, fold, e, e.needed_s)
            train(raw, configuration, fold, root=root, config=dataclasses.replace(config, time_budget_s=e.needed_s),
                  device=device, resume=True)
    best = find_best_configuration(raw, root=root)
    predictions = root / "demo_predictions" / raw.name
    predict(raw / "imagesTs", predictions, dataset=raw, root=root, device=device)
    test = evaluate(raw / "labelsTs", predictions)
    page = report(raw, root=root)
    fg = test["foreground_mean"].get("dice", float("nan"))
    log.info("\n=== autounet demo finished ===\n%s\nchosen: %s, postprocessing: %s\n"
             "test Dice (held-out cases): %s, foreground mean %.4f\nreport: %s",
             __import__("autounet.postprocess.find_best", fromlist=["x"]).format_table(best), best["best"],
             _describe_rules(best["postprocessing"]["rules"]),
             {c: round(m.get("dice", float("nan")), 4) for c, m in test["mean"].items()}, fg, page)
    return {"cross_validation": best, "test": test, "report": page}
