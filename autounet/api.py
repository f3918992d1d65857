"""The Python API behind every command: a notebook can do what the CLI does.

Each function resolves its dataset in the workspace and calls the stage that does the work;
the settings objects are the ones the stages take (``TrainingConfig``, ``PredictSettings``).

>>> from autounet import api
>>> api.make_example_dataset("raw/Dataset900_Example", dims=3)
>>> plans = api.plan_and_preprocess("Dataset900_Example")
>>> api.train("Dataset900_Example", "3d_fullres", 0, config=api.TrainingConfig(time_budget_s=1800))
>>> api.predict("new_images", "masks", dataset="Dataset900_Example", settings=api.PredictSettings(mirror=False))
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from autounet.autoplan.variants import VARIANTS  # noqa: F401 (the CLI's choices)
from autounet.inference.settings import BACKENDS, PredictSettings  # BACKENDS: the CLI's choices
from autounet.parallel import default_processes
from autounet.runner.options import RunOptions
from autounet.training.budget import parse_duration
from autounet.training.config import TrainingConfig
from autounet.workspace import ROOT_ENV, DatasetPaths, dataset_paths, default_root, resolve_dataset

if TYPE_CHECKING:
    from autounet.autoplan.plans import Plans
    from autounet.inference.settings import PredictionReport
    from autounet.postprocess.selections import Selection

__all__ = ["run", "make_example_dataset", "make_case_dataset", "make_instance_dataset", "make_video_dataset", "convert_msd", "convert_medmnist",
           "verify_dataset", "check_folds", "plan_and_preprocess", "train", "predict", "ensemble", "export_model",
           "import_model", "find_best_configuration", "evaluate", "apply_postprocessing", "report", "demo",
           "TrainingConfig", "PredictSettings", "RunOptions", "parse_duration"]

log = logging.getLogger("autounet")


def make_example_dataset(out_dir: str | Path, dims: int = 3, cases: int = 20, channels: int = 1,
                         anisotropic: bool = False, seed: int = 0, test_cases: int | None = None,
                         shape: Sequence[int] | None = None, overwrite: bool = False) -> Path:
    """Write a synthetic dataset in the raw layout (see :func:`autounet.example_data.make_example_dataset`)."""
    from autounet.example_data import make_example_dataset as make

    return make(Path(out_dir), dims, cases, channels, anisotropic, seed, test_cases, shape, overwrite)


def make_case_dataset(out_dir: str | Path, task: str = "classification", dims: int = 2, cases: int = 40,
                      classes: int = 2, class_shares: Sequence[float] | None = None, test_cases: int = 0,
                      seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic case-level dataset (classification, multilabel or regression; images and
    labelsTr.csv); see :func:`autounet.example_data.make_case_dataset`."""
    from autounet.example_data import make_case_dataset as make

    return make(Path(out_dir), task, dims, cases, classes, class_shares=class_shares, test_cases=test_cases,
                seed=seed, overwrite=overwrite)


def make_instance_dataset(out_dir: str | Path, dims: int = 2, cases: int = 12, shape: Sequence[int] | None = None,
                          test_cases: int = 2, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic instance dataset of touching objects (see
    :func:`autounet.example_data.make_instance_dataset`)."""
    from autounet.example_data import make_instance_dataset as make

    return make(Path(out_dir), dims, cases, shape, test_cases=test_cases, seed=seed, overwrite=overwrite)


def make_video_dataset(out_dir: str | Path, cases: int = 20, frames: int = 100, size: Sequence[int] = (64, 64),
                       seed: int = 0, test_cases: int | None = None, overwrite: bool = False, ef: bool = False) -> Path:
    """Write a sparsely annotated, echocardiography-like dataset (:func:`autounet.example_data.make_video_dataset`);
    ``ef``: instead, each video's ejection fraction as a regression target (``make_ef_dataset``)."""
    from autounet.example_data import make_ef_dataset, make_video_dataset as make

    if ef:
        n_test = max(1, cases // 5) if test_cases is None else test_cases
        return make_ef_dataset(Path(out_dir), cases, frames, size, seed, n_test, overwrite)
    return make(Path(out_dir), cases, frames, size, seed, test_cases, overwrite)


def convert_msd(task: str | Path, output: Path | None = None, dataset_id: int | None = None,
                overwrite: bool = False, processes: int | None = None, root: Path | None = None) -> Path:
    """Convert a Medical Segmentation Decathlon task folder (as downloaded) into the raw layout
    under ``output`` (default: the workspace's raw datasets); returns the dataset folder."""
    from autounet.io.msd import convert_msd as convert
    from autounet.workspace import workspace_roots

    target = Path(output) if output is not None else workspace_roots(root).raw
    return convert(Path(task), target, dataset_id, overwrite, processes or 1)


def convert_medmnist(npz: str | Path, target: str | Path, holdout: str = "test",
                     class_names: Sequence[str] | None = None, processes: int | None = None,
                     root: Path | None = None) -> Path:
    """Convert a MedMNIST ``.npz`` (2D or 3D) into a case-level raw dataset: every split but
    ``holdout`` into imagesTr + labelsTr.csv, ``holdout`` into imagesTs + labelsTs.csv. A bare
    ``target`` name (DatasetNNN_Name) goes under the workspace's raw datasets."""
    from autounet.io.medmnist import convert_medmnist as convert
    from autounet.workspace import workspace_roots

    target = Path(target)
    if len(target.parts) == 1:
        target = workspace_roots(root).raw / target
    return convert(Path(npz), target, holdout, class_names, processes or 1)


def verify_dataset(dataset: str | Path, root: Path | None = None, processes: int | None = None) -> int:
    """Check a raw dataset completely; returns the number of cases, raises listing every problem."""
    from autounet.io.verify import verify_dataset as verify

    _, cases = verify(resolve_dataset(dataset, root).raw, processes or default_processes())
    return len(cases)


def plan_and_preprocess(dataset: str | Path, root: Path | None = None, processes: int | None = None,
                        gpu_memory_gb: float | None = None, configurations: Sequence[str] | None = None,
                        force: bool = False, seed: int = 0, splits_file: Path | None = None, preprocess: bool = True,
                        network: str = "plain", device: str = "auto", wait: bool = False) -> "Plans":
    """Verify, fingerprint, plan, split and preprocess a dataset. Resumable; returns the plans.

    dataset : id, name, or raw folder path. configurations : subset of the planned ones to
    preprocess (default all). force : redo the fingerprint and every case. gpu_memory_gb : the
    memory to plan for; None: the device's. wait : for another process preprocessing it.
    """
    from autounet.preprocess.prepare import prepare_dataset

    return prepare_dataset(resolve_dataset(dataset, root), processes, gpu_memory_gb, configurations, force, seed,
                           splits_file, preprocess, network, device, wait)


def train(dataset: str | Path, configuration: str, fold: int | str, root: Path | None = None,
          config: TrainingConfig | None = None, device: str = "auto", resume: bool = False,
          variant: str | None = None, wait: bool = False) -> Path:
    """Train one fold (0..4 or "all") of a planned configuration; returns the fold folder.

    resume : continue from the latest checkpoint after an interruption (``--continue``);
    variant : one of ``VARIANTS`` instead of the planned network; wait : for another trainer.
    """
    from autounet.training.budget import NetworkChoice
    from autounet.training.fold import train_fold

    return train_fold(resolve_dataset(dataset, root), configuration, fold, config or TrainingConfig(), device, resume,
                      NetworkChoice(variant) if variant else None, wait)


def check_folds(dataset: str | Path, configuration: str, folds: Sequence[int | str],
                root: Path | None = None) -> list[int | str]:
    """The folds to train, checked all at once against the plan and the splits (so that a bad fold
    at the end of a list is reported before the good ones train)."""
    from autounet.autoplan.plans import load_plans
    from autounet.errors import WorkspaceError
    from autounet.io.atomic import read_json

    paths = resolve_dataset(dataset, root)
    if not paths.plans.is_file() or not paths.splits.is_file():
        raise WorkspaceError(f"{paths.name} is not planned yet: run `autounet plan_and_preprocess {paths.name}` "
                             f"(or `autounet run {paths.name}`)")
    planned = sorted(load_plans(paths.plans).configurations)
    if configuration not in planned:
        raise WorkspaceError(f"configuration {configuration!r} is not in the plan of {paths.name}; planned: "
                             f"{', '.join(planned)} (e.g. autounet train {paths.name} {planned[0]} 0)")
    n = len(read_json(paths.splits))
    bad = [str(f) for f in folds if f != "all" and not (isinstance(f, int) and 0 <= f < n)]
    if bad:
        raise WorkspaceError(f"{'folds' if len(bad) > 1 else 'fold'} {' '.join(bad)} "
                             f"{'do' if len(bad) > 1 else 'does'} not exist: a fold is 0-{n - 1} (the {n} splits of "
                             f"{paths.splits}) or 'all'; nothing was trained")
    return list(folds)


def predict(inputs: str | Path, output: str | Path, dataset: str | Path | None = None, *, model: Path | None = None,
            configurations: Sequence[str] | None = None, folds: Sequence[str] | None = None,
            checkpoint: str = "final", settings: PredictSettings | None = None, postprocessing: bool = True,
            root: Path | None = None, overwrite: bool = False, resume: bool = False,
            part: tuple[int, int] | None = None, report: Path | None = None,
            output_format: str | None = None) -> "PredictionReport":
    """Predict a folder of images (or one image file); returns a PredictionReport.

    The model comes from a dataset's trained folds (the ``configurations`` given, else the chosen
    best configuration or ensemble, with its postprocessing) or from an exported ``model`` (.zip
    or .onnx). An output that exists already is replaced only with ``overwrite``, kept when
    complete with ``resume`` (else that case fails). ``part`` (K, N): only the K-th of N shares
    of the cases. ``report``: write the run manifest (a JSON file) there. A folder of DICOM
    series is predicted series by series, the masks written as NIfTI or, with ``output_format``
    "dicom-seg", as DICOM SEG.
    """
    from autounet.inference.settings import OutputOptions
    from autounet.predictor.folder import predict_folder
    from autounet.predictor.loaded import load_model

    settings = settings or PredictSettings()
    options = OutputOptions(Path(output), overwrite, resume, part)
    if model is None and dataset is None:
        from autounet.errors import WorkspaceError

        raise WorkspaceError("say which model to use: -d DATASET (trained in this workspace) or -m MODEL.zip")
    return predict_folder(Path(inputs), lambda: load_model(dataset, model, configurations, folds, checkpoint, settings,
                                                           postprocessing, root),
                          options, settings.save_probabilities, report, output_format)


def ensemble(inputs: Sequence[Path], output: Path, save_probabilities: bool = False) -> list[Path]:
    """Average the saved probabilities of several prediction folders and write the masks."""
    from autounet.inference.ensemble import ensemble_folders

    return ensemble_folders([Path(i) for i in inputs], Path(output), save_probabilities)


def export_model(dataset: str | Path, output: Path, configurations: Sequence[str] | None = None,
                 folds: Sequence[str] | None = None, checkpoint: str = "final", root: Path | None = None,
                 overwrite: bool = False, format: str | None = None) -> Path:
    """Write a trained model (the chosen best configuration or ensemble with its postprocessing,
    or the configurations given) to a file that ``predict(model=...)`` takes; an existing file is
    replaced only with ``overwrite``.

    format : "zip" (the checkpoints) or "onnx" (one ONNX graph with every fold, the plans in its
    metadata and in a JSON beside it; runs without torch); default from the file name's ending.
    """
    from autounet.errors import WorkspaceError
    from autounet.inference.source import dataset_model
    from autounet.io.atomic import check_writable

    output = Path(output)
    format = format or ("onnx" if output.suffix.lower() == ".onnx" else "zip")
    if format not in ("zip", "onnx"):
        raise WorkspaceError(f"unknown export format {format!r}; choose zip or onnx")
    if (format == "onnx") != (output.suffix.lower() == ".onnx"):
        raise WorkspaceError(f"{output}: an ONNX model is written to a .onnx file (its plans beside it as .json), a "
                             "zip to any other name; change the name or --format")
    for target in (output, output.with_suffix(".json")) if format == "onnx" else (output,):
        if target.exists() and not overwrite:
            raise WorkspaceError(f"{target}: exists; choose another file, or pass --overwrite to replace it")
    check_writable(output.parent)
    paths = resolve_dataset(dataset, root)
    source = dataset_model(paths, configurations)
    if format == "onnx":
        from autounet.model.onnx_export import export_onnx

        return export_onnx(paths.trained, source.configurations, output, folds, checkpoint,
                           paths.raw_files.dataset_json, source.postprocessing)
    from autounet.model.archive import export_model as export

    return export(paths.trained, source.configurations, output, folds, checkpoint,
                  paths.raw_files.dataset_json, source.postprocessing, source.mirror, source.thresholds)


def import_model(archive: Path, output: Path, overwrite: bool = False) -> dict:
    """Unpack an exported model zip into an empty folder (``overwrite``: replace what a folder
    holds); returns its manifest."""
    from autounet.model.archive import import_model as unpack

    return unpack(Path(archive), Path(output), overwrite)


def find_best_configuration(dataset: str | Path, root: Path | None = None, configurations: Sequence[str] | None = None,
                            ensembles: bool = True, processes: int | None = None) -> "Selection":
    """Pick the best configuration or pair ensemble on the cross-validation (and a segmentation's
    postprocessing); writes results/DATASET/{cross_validation,best_configuration,postprocessing}.json.
    Returns the typed result (``to_json()``, ``table()``, ``describe()``)."""
    from autounet.io.atomic import check_writable
    from autounet.postprocess.find_best import find_best_configuration as find

    paths = resolve_dataset(dataset, root)
    check_writable(paths.results)
    result = find(paths, configurations, ensembles, processes or default_processes())
    log.info("cross-validation (%s):\n%s", paths.name, result.table())
    details = result.details()
    log.info("best: %s%s", result.describe(), ":\n  " + "\n  ".join(details) if details else "")
    log.info("predict with: %s", result.predict_command)
    return result


def evaluate(reference: str | Path, prediction: str | Path, output: Path | None = None,
             nsd_tolerance: float = 1.0, processes: int | None = None) -> dict:
    """Per-case, per-class metrics of a prediction folder against a reference folder (instance
    metrics where the references' dataset.json says ``"task": "instance"``); or, for a
    predictions CSV (a case-level task), its metrics against a labels CSV."""
    from autounet.postprocess.case_evaluate import evaluate_case_files, is_case_level
    from autounet.postprocess.evaluate import evaluate_folders
    from autounet.postprocess.instance_evaluate import evaluate_instance_folders, instance_dataset

    if is_case_level(Path(prediction)):
        return evaluate_case_files(Path(reference), Path(prediction), output)
    if instance_dataset(Path(reference)):
        return evaluate_instance_folders(Path(reference), Path(prediction), processes or default_processes(), output)
    return evaluate_folders(Path(reference), Path(prediction), nsd_tolerance=nsd_tolerance,
                            processes=processes or default_processes(), output=output)


def apply_postprocessing(inputs: str | Path, output: str | Path, rules_file: str | Path,
                         processes: int | None = None, overwrite: bool = False) -> list[Path]:
    """Apply the rules of a postprocessing.json to every mask of a folder (``overwrite``: the
    output may be the input folder, whose masks are then replaced)."""
    from autounet.postprocess.selection import apply_postprocessing_to_folder, load_rules

    return apply_postprocessing_to_folder(Path(inputs), Path(output), load_rules(Path(rules_file)),
                                          processes or default_processes(), overwrite)


def report(dataset: str | Path, root: Path | None = None, output: Path | None = None) -> Path:
    """Write the HTML report of a dataset (plan, training curves, CV table, postprocessing, overlays)."""
    from autounet.io.atomic import check_writable
    from autounet.report import write_report

    paths = resolve_dataset(dataset, root)
    check_writable(Path(output) if output is not None else paths.trained.report)
    return write_report(paths, output)


def run(dataset: str | Path, root: Path | None = None, options: RunOptions | None = None) -> dict:
    """The whole pipeline on a dataset within one time budget (``autounet run``); resumable.

    verify -> plan -> preprocess -> train the configurations worth training, every fold, sharing
    the budget by the rule of :mod:`autounet.runner.share` -> find_best_configuration -> report.
    With ``options.dry_run`` it plans and returns the per-fold commands instead of training.
    """
    from autounet.runner.pipeline import run_dataset

    return run_dataset(resolve_dataset(dataset, root), options or RunOptions(), root)


DEMO_ROOT = "autounet_demo"      # the demo's workspace without $AUTOUNET_ROOT or --root, as the main job's
DEMO_AFTER_TRAINING = (0.10, 25.0)  # share of the demo's time (at least these seconds) kept for what follows training


def demo(root: Path | None = None, time_budget_s: float | None = 300.0, epochs: int | None = None,
         iterations_per_epoch: int | None = None, device: str = "auto", amp: bool = True) -> dict:
    """``autounet run`` on a generated example dataset, then prediction and evaluation of its
    held-out test cases; resumable.

    ``time_budget_s`` is the demo's whole wall time: writing the dataset comes off it, and
    ``DEMO_AFTER_TRAINING`` is kept for selection, the test predictions and the report (so a busy
    machine shortens training, not the wait). ``epochs`` / ``iterations_per_epoch``: a fixed
    schedule instead. The workspace is ``root``, else ``$AUTOUNET_ROOT``, else ./autounet_demo.
    """
    started = time.monotonic()
    # the workspace: root, else $AUTOUNET_ROOT, else ./autounet_demo (the main job's)
    root = Path(root) if root is not None else default_root() if os.environ.get(ROOT_ENV) else Path(DEMO_ROOT).resolve()
    paths = _example_dataset(root)
    fixed = epochs is not None or iterations_per_epoch is not None or time_budget_s is None
    schedule = (TrainingConfig(epochs=epochs or 4, iterations_per_epoch=iterations_per_epoch or 12,
                               val_iterations_per_epoch=2, amp=amp) if fixed else None)
    budget = None if fixed else time_budget_s - (time.monotonic() - started)
    after = None if fixed else max(DEMO_AFTER_TRAINING[1], DEMO_AFTER_TRAINING[0] * time_budget_s)
    result = run(paths.raw, root, RunOptions(time_budget_s=budget, device=device, schedule=schedule,
                                             after_training_s=after, amp=amp))
    predictions = root / "demo_predictions" / paths.name
    predict(paths.raw_files.images("Ts"), predictions, dataset=paths.raw, root=root,
            settings=PredictSettings(device=device, amp=amp), overwrite=True)  # the demo's own folder
    test = evaluate(paths.raw_files.labels("Ts"), predictions)
    best = result["cross_validation"]
    log.info("\n=== autounet demo finished in %.0f s ===\nchosen: %s, postprocessing: %s\n"
             "test Dice (held-out cases): %s, foreground mean %.4f\nreport: %s", time.monotonic() - started,
             best.best, " ".join(best.details()),
             {c: round(m.get("dice", float("nan")), 4) for c, m in test["mean"].items()},
             test["foreground_mean"].get("dice", float("nan")), result["report"])
    return {**result, "test": test}


def _example_dataset(root: Path) -> DatasetPaths:
    """The demo's example dataset in the workspace at ``root``, generated when it is not there."""
    paths = dataset_paths(root, "Dataset900_Example")
    if not paths.raw_files.dataset_json.is_file():  # written last: without it, an interrupted run's, redone
        make_example_dataset(paths.raw, dims=3, cases=20, channels=1, anisotropic=True, shape=(16, 48, 48),
                             test_cases=5, overwrite=True)
    return paths
