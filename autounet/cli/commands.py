"""What each subcommand does with its arguments: a call of :mod:`autounet.api` and a report.

The work happens behind the API, so a notebook can do what the command does.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from autounet import api

log = logging.getLogger("autounet")


def make_example_dataset(a: argparse.Namespace) -> int:
    if a.video is not None and (a.dims != 3 or a.channels != 1 or a.anisotropic):
        raise ValueError("--video writes one-channel 2D+time NIfTI videos; leave out --dims, --channels, --anisotropic")
    if a.instances and (a.video is not None or a.channels != 1 or a.anisotropic):
        raise ValueError("--instances writes one-channel touching objects; leave out --video, --channels, --anisotropic")
    if a.ef and a.video is None:
        raise ValueError("--ef gives videos an ejection fraction: add --video FRAMES")
    out = (api.make_video_dataset(a.out, a.cases, a.video, a.shape or (64, 64), a.seed, a.test_cases, a.overwrite, a.ef)
           if a.video is not None else
           api.make_instance_dataset(a.out, a.dims, a.cases, a.shape, test_cases=2 if a.test_cases is None else a.test_cases,
                                     seed=a.seed, overwrite=a.overwrite) if a.instances else
           api.make_example_dataset(a.out, dims=a.dims, cases=a.cases, channels=a.channels, anisotropic=a.anisotropic,
                                    seed=a.seed, test_cases=a.test_cases, shape=a.shape, overwrite=a.overwrite))
    log.info("example dataset written to %s", out)
    return 0


def convert_msd(a: argparse.Namespace) -> int:
    out = api.convert_msd(a.task, a.output, a.dataset_id, a.overwrite, a.processes, root=a.root)
    log.info("converted %s into %s", a.task, out)
    return 0


def convert_medmnist(a: argparse.Namespace) -> int:
    out = api.convert_medmnist(a.npz, a.target, a.holdout, a.class_names, a.processes, root=a.root)
    log.info("converted %s into %s; next: autounet run %s --time-budget 15m", a.npz, out, out.name)
    return 0


def verify_dataset(a: argparse.Namespace) -> int:
    n = api.verify_dataset(a.dataset, a.root, a.processes)
    log.info("%s: %d training case(s), no problems found", a.dataset, n)
    return 0


def plan_and_preprocess(a: argparse.Namespace) -> int:
    if a.verify_dataset_integrity:
        log.info("(--verify_dataset_integrity: autounet always verifies the whole dataset before planning)")
    for dataset in a.datasets:
        api.plan_and_preprocess(dataset, root=a.root, processes=a.processes, gpu_memory_gb=a.gpu_memory_gb,
                                configurations=a.configurations, force=a.force, seed=a.seed, splits_file=a.splits,
                                preprocess=not a.plan_only, network=a.network, device=a.device, wait=a.wait)
    return 0


def _run_options(a: argparse.Namespace, **overrides) -> api.RunOptions:
    budget = api.parse_duration(a.time_budget) if a.time_budget else None
    iterations = a.iterations_per_epoch or 250
    schedule = (api.TrainingConfig(epochs=a.epochs or 1000, iterations_per_epoch=iterations,
                                   val_iterations_per_epoch=min(50, max(1, iterations // 5)))
                if a.epochs or a.iterations_per_epoch else None)
    return api.RunOptions(time_budget_s=budget, device=a.device, processes=a.processes, schedule=schedule,
                          configurations=tuple(a.configurations) if a.configurations else None,
                          gpu_memory_gb=a.gpu_memory_gb, network=a.network, seed=a.seed, dry_run=a.dry_run,
                          amp=a.amp, wait=getattr(a, "wait", False),
                          keep_stale=getattr(a, "keep_stale", False), **overrides)


def run(a: argparse.Namespace) -> int:
    result = api.run(a.dataset, a.root, _run_options(a))
    if a.dry_run:
        print("\n".join(result["commands"]))
    return 0


def _training_config(a: argparse.Namespace) -> api.TrainingConfig:
    """A TrainingConfig from the flags given; the others keep their defaults."""
    overrides = {f.name: getattr(a, f.name) for f in dataclasses.fields(api.TrainingConfig)
                 if getattr(a, f.name, None) is not None}
    if a.time_budget is not None:
        overrides["time_budget_s"] = api.parse_duration(a.time_budget)
    validation = api.TrainingConfig().validation
    for flag, field in ((a.mirror, "mirror"), (a.save_probabilities, "save_probabilities")):
        if flag is not None:
            validation = dataclasses.replace(validation, **{field: flag})
    return api.TrainingConfig(**overrides, validation=validation)


def train(a: argparse.Namespace) -> int:
    config = _training_config(a)
    folds = api.check_folds(a.dataset, a.configuration, a.fold, a.root)  # every fold checked before any trains
    for fold in folds:
        api.train(a.dataset, a.configuration, fold, root=a.root, config=config, device=a.device, resume=a.resume,
                  variant=a.variant, wait=a.wait)
    return 0


def predict(a: argparse.Namespace) -> int:
    settings = api.PredictSettings(step=a.step, mirror=a.mirror, device=a.device, amp=a.amp,
                                   save_probabilities=a.save_probabilities, processes=a.processes,
                                   backend=a.backend, int8=a.int8)
    if (a.part is None) != (a.parts is None):
        raise ValueError("--part K and --parts N go together (K from 0 to N-1)")
    report = api.predict(a.input, a.output, dataset=a.dataset, model=a.model, configurations=a.configurations,
                         folds=a.folds, checkpoint=a.checkpoint, settings=settings, postprocessing=a.postprocessing,
                         root=a.root, overwrite=a.overwrite, resume=a.resume,
                         part=(a.part, a.parts) if a.parts is not None else None, report=a.report,
                         output_format=a.output_format)
    for reason in report.failed.values():
        print(f"autounet predict: failed: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def ensemble(a: argparse.Namespace) -> int:
    written = api.ensemble(a.input, a.output, a.save_probabilities)
    log.info("ensembled %d case(s) from %d folders into %s", len(written), len(a.input), a.output)
    return 0


def export_model(a: argparse.Namespace) -> int:
    out = api.export_model(a.dataset, a.output, a.configurations, a.folds, a.checkpoint, root=a.root,
                           overwrite=a.overwrite, format=a.format)
    log.info("model written to %s%s", out, f" (and its plans to {out.with_suffix('.json')})"
             if out.suffix == ".onnx" else "")
    return 0


def import_model(a: argparse.Namespace) -> int:
    info = api.import_model(a.zip, a.output, a.overwrite)
    log.info("imported %s (folds %s) into %s", " + ".join(info["configurations"]), " ".join(info["folds"]), a.output)
    return 0


def find_best_configuration(a: argparse.Namespace) -> int:
    api.find_best_configuration(a.dataset, a.root, a.configurations, not a.no_ensembles, a.processes)
    return 0


def evaluate(a: argparse.Namespace) -> int:
    result = api.evaluate(a.reference, a.prediction, a.output, a.nsd_tolerance, a.processes)
    if "task" in result:
        log.info("%s", format_case_evaluation(result))
        return 0
    for cls, m in result["mean"].items():
        log.info("class %s: %s", cls, "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    log.info("foreground mean: %s", "  ".join(f"{k} {v:.4f}" for k, v in result["foreground_mean"].items()))
    log.info("per-case metrics and means written to %s", a.output or a.prediction)
    return 0


def apply_postprocessing(a: argparse.Namespace) -> int:
    written = api.apply_postprocessing(a.input, a.output, a.postprocessing, a.processes, a.overwrite)
    log.info("postprocessed %d mask(s) into %s", len(written), a.output)
    return 0


def report(a: argparse.Namespace) -> int:
    log.info("report: %s", api.report(a.dataset, a.root, a.output))
    return 0


def demo(a: argparse.Namespace) -> int:
    api.demo(a.root, time_budget_s=api.parse_duration(a.time_budget), epochs=a.epochs,
             iterations_per_epoch=a.iterations_per_epoch, device=a.device, amp=a.amp)
    return 0


def format_case_evaluation(result: dict) -> str:
    """A case-level evaluation as text: the summary figures, per-class figures, the confusion matrix."""
    keys = ("mae", "rmse", "r2") if result["task"] == "regression" else (
        "accuracy", "balanced_accuracy", "auc", "f1_macro")
    lines = [f"{result['num_cases']} case(s): " + "  ".join(f"{k} {result[k]:.4f}" for k in keys)]
    for name, m in (result.get("per_class") or result.get("per_target") or {}).items():
        lines.append(f"  {name}: " + "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    if "confusion_matrix" in result:
        lines.append("confusion matrix (rows: reference, columns: predicted; " + ", ".join(result["names"]) + "):")
        lines += ["  " + " ".join(f"{v:>6d}" for v in row) for row in result["confusion_matrix"]]
    return "\n".join(lines)
