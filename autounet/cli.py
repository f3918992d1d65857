"""The ``autounet`` command: one program, one subcommand per pipeline step.

Each handler turns its arguments into a call of :mod:`autounet.api` and reports the result;
the work happens behind the API, so a notebook can do what the command does.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from autounet import __version__, api
from autounet.errors import AutounetError
from autounet.hardware import MIN_MEMORY_TARGET_GB

log = logging.getLogger("autounet")


def _cmd_make_example_dataset(a: argparse.Namespace) -> int:
    if a.video is not None and (a.dims != 3 or a.channels != 1 or a.anisotropic):
        raise ValueError("--video writes one-channel 2D+time NIfTI videos; leave out --dims, --channels, --anisotropic")
    out = (api.make_video_dataset(a.out, a.cases, a.video, a.shape or (64, 64), a.seed, a.test_cases, a.overwrite)
           if a.video is not None else
           api.make_example_dataset(a.out, dims=a.dims, cases=a.cases, channels=a.channels, anisotropic=a.anisotropic,
                                    seed=a.seed, test_cases=a.test_cases, shape=a.shape, overwrite=a.overwrite))
    log.info("example dataset written to %s", out)
    return 0


def _cmd_verify_dataset(a: argparse.Namespace) -> int:
    n = api.verify_dataset(a.dataset, a.root, a.processes)
    log.info("%s: %d training case(s), no problems found", a.dataset, n)
    return 0


def _cmd_plan_and_preprocess(a: argparse.Namespace) -> int:
    api.plan_and_preprocess(a.dataset, root=a.root, processes=a.processes, gpu_memory_gb=a.gpu_memory_gb,
                            configurations=a.configurations, force=a.force, seed=a.seed, splits_file=a.splits,
                            preprocess=not a.plan_only, network=a.network, device=a.device)
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


def _cmd_train(a: argparse.Namespace) -> int:
    config = _training_config(a)
    for fold in a.fold:
        api.train(a.dataset, a.configuration, fold, root=a.root, config=config, device=a.device, resume=a.resume)
    return 0


def _cmd_predict(a: argparse.Namespace) -> int:
    settings = api.PredictSettings(step=a.step, mirror=a.mirror, device=a.device, amp=a.amp,
                                   save_probabilities=a.save_probabilities, processes=a.processes)
    report = api.predict(a.input, a.output, dataset=a.dataset, model=a.model, configurations=a.configuration,
                         folds=a.folds, checkpoint=a.checkpoint, settings=settings, postprocessing=a.postprocessing,
                         root=a.root)
    for reason in report.failed.values():
        print(f"autounet predict: failed: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_ensemble(a: argparse.Namespace) -> int:
    written = api.ensemble(a.input, a.output, a.save_probabilities)
    log.info("ensembled %d case(s) from %d folders into %s", len(written), len(a.input), a.output)
    return 0


def _cmd_export_model(a: argparse.Namespace) -> int:
    out = api.export_model(a.dataset, a.output, a.configuration, a.folds, a.checkpoint, root=a.root,
                           overwrite=a.overwrite)
    log.info("model written to %s", out)
    return 0


def _cmd_import_model(a: argparse.Namespace) -> int:
    info = api.import_model(a.zip, a.output, a.overwrite)
    log.info("imported %s (folds %s) into %s", " + ".join(info["configurations"]), " ".join(info["folds"]), a.output)
    return 0


def _cmd_find_best_configuration(a: argparse.Namespace) -> int:
    api.find_best_configuration(a.dataset, a.root, a.configurations, not a.no_ensembles, a.processes)
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    result = api.evaluate(a.reference, a.prediction, a.output, a.nsd_tolerance, a.processes)
    for cls, m in result["mean"].items():
        log.info("class %s: %s", cls, "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    log.info("foreground mean: %s", "  ".join(f"{k} {v:.4f}" for k, v in result["foreground_mean"].items()))
    log.info("per-case metrics and means written to %s", a.output or a.prediction)
    return 0


def _cmd_apply_postprocessing(a: argparse.Namespace) -> int:
    written = api.apply_postprocessing(a.input, a.output, a.postprocessing, a.processes, a.overwrite)
    log.info("postprocessed %d mask(s) into %s", len(written), a.output)
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    log.info("report: %s", api.report(a.dataset, a.root, a.output))
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    api.demo(a.root, time_budget_s=api.parse_duration(a.time_budget), epochs=a.epochs,
             iterations_per_epoch=a.iterations_per_epoch, device=a.device)
    return 0


DATASET_HELP = "dataset id (900), name (Dataset900_Example) or raw folder path"


def _number(kind: type, low: float, what: str) -> Callable[[str], float]:
    """An argparse type: a ``kind`` number of at least ``low`` (else a usage error, exit code 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


POSITIVE_INT, COUNT = _number(int, 1, "at least 1"), _number(int, 0, "0 or more")
POSITIVE = _number(float, 1e-300, "positive")
MEMORY_GB = _number(float, MIN_MEMORY_TARGET_GB, f"at least {MIN_MEMORY_TARGET_GB:g} (GB; below that no network fits)")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help=DATASET_HELP)


def _processes(p: argparse.ArgumentParser, default: int | None = None, what: str = "worker processes") -> None:
    p.add_argument("-p", "--processes", type=COUNT, default=default,
                   help=f"{what} (default: {default if default is not None else 'the number of cores'})")


def _device(p: argparse.ArgumentParser, help: str = "default: CUDA, then MPS, then the CPU") -> None:
    p.add_argument("--device", default="auto", choices=DEVICES, help=help)


def _overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=what)


def _command(sub, func: Callable[[argparse.Namespace], int], help: str, description: str | None = None, *,
             dataset: bool = False, processes: bool = False) -> argparse.ArgumentParser:
    """The subcommand ``func`` handles (its name is the handler's, ``_cmd_NAME``), with a DATASET
    argument and ``-p`` worker processes when asked."""
    p = sub.add_parser(func.__name__.removeprefix("_cmd_"), help=help, description=description)
    p.set_defaults(func=func)
    if dataset:
        _dataset(p)
    if processes:
        _processes(p)
    return p


def _add_example_dataset(sub) -> None:
    p = _command(sub, _cmd_make_example_dataset, "write a synthetic dataset in the raw layout",
                 description="Write a realistic synthetic dataset in nnU-Net v2's raw layout: training "
                             "and test images and labels, and dataset.json.")
    p.add_argument("out", type=Path, help="output folder, e.g. raw/Dataset900_Example")
    p.add_argument("--dims", type=int, choices=(2, 3), default=3, help="3: NIfTI volumes; 2: PNG images (default 3)")
    p.add_argument("--cases", type=_number(int, 2, "at least 2"), default=20, help="training cases (default 20)")
    p.add_argument("--test-cases", type=COUNT, default=None, help="test cases (default cases/5)")
    p.add_argument("--channels", type=POSITIVE_INT, default=1, help="channels per case (2D: 3 writes one RGB PNG)")
    p.add_argument("--anisotropic", action="store_true", help="3 x 0.8 x 0.8 mm voxels instead of ~1 mm isotropic")
    p.add_argument("--shape", type=_number(int, 8, "at least 8"), nargs="+", default=None,
                   help="typical case shape (Z Y X, or Y X in 2D)")
    p.add_argument("--video", type=_number(int, 2, "at least 2"), default=None, metavar="FRAMES",
                   help="instead: echo-like 2D+time videos, 2 frames labelled, the rest 'ignore' (--shape: Y X)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _overwrite(p, "replace the dataset the folder holds")


def _add_verify(sub) -> None:
    _command(sub, _cmd_verify_dataset, "check a raw dataset and report every problem",
             description="Check dataset.json, the file layout and every image and label; report all problems at once.",
             dataset=True, processes=True)


def _add_plan(sub) -> None:
    p = _command(sub, _cmd_plan_and_preprocess, "verify, fingerprint, plan and preprocess a dataset",
                 description="Verify the dataset, write its fingerprint, plans and splits, and "
                             "preprocess every training case for every planned configuration. Resumable.",
                 dataset=True, processes=True)
    p.add_argument("--gpu-memory-gb", type=MEMORY_GB, default=None,
                   help="memory to plan patch and batch size for (default: read from the device: a GPU's memory minus "
                        "a margin, or 30%% of the RAM up to 8 GB on a CPU)")
    _device(p, "the device to plan for (default: the one present)")
    p.add_argument("-c", "--configurations", nargs="+", default=None,
                   help="preprocess only these planned configurations (default: all)")
    p.add_argument("--network", choices=("plain", "residual"), default="plain",
                   help="U-Net encoder: plain conv blocks or residual blocks (ResEnc-style)")
    p.add_argument("--splits", type=Path, default=None, help="use this split file (nnU-Net's splits_final.json format)")
    p.add_argument("--plan-only", action="store_true", help="write fingerprint, plans and splits; do not preprocess")
    p.add_argument("--force", action="store_true", help="recompute the fingerprint and redo every case")
    p.add_argument("--seed", type=int, default=0, help="seed for intensity sampling, splits and sampling locations")


def _add_train(sub) -> None:
    p = _command(sub, _cmd_train, "train folds of a configuration (5-fold cross-validation)",
                 description="Train a U-Net on one or more folds of a planned configuration, then predict the "
                             "fold's validation cases. Resumable with --continue.", dataset=True)
    p.add_argument("configuration", help="2d, 3d_fullres, 3d_lowres or 3d_cascade_fullres (as planned)")
    p.add_argument("fold", nargs="+", help="fold number(s) 0..4, or 'all' to train on every case")
    p.add_argument("--continue", dest="resume", action="store_true", help="resume from the last checkpoint")
    _device(p)
    p.add_argument("--time-budget", default=None,
                   help="wall-clock budget per fold, e.g. 30m, 8h, 1h30m: autounet measures this machine's speed and "
                        "chooses epochs x iterations (and a lighter network if needed) to finish on time")
    for flag, kind, text in (("--epochs", POSITIVE_INT, "epochs (default 1000)"),
                             ("--iterations-per-epoch", POSITIVE_INT, "training iterations per epoch (default 250)"),
                             ("--val-iterations-per-epoch", POSITIVE_INT, "validation iterations per epoch for the "
                                                                          "pseudo-Dice (default 50)"),
                             ("--initial-lr", POSITIVE, "initial learning rate (default 0.01)"),
                             ("--weight-decay", _number(float, 0, "0 or more"), "default 3e-5"),
                             ("--batch-size", POSITIVE_INT, "override the plan's batch size"),
                             ("--seed", int, "random seed (default 0)")):
        p.add_argument(flag, dest=flag[2:].replace("-", "_"), type=kind, default=None, help=text)
    p.add_argument("--num-workers", dest="num_workers", type=COUNT, default=None,
                   help="augmentation worker processes (default: from the machine; 0 = in the main process)")
    p.add_argument("--no-augmentation", dest="augmentation", action="store_false", default=None,
                   help="train without data augmentation")
    p.add_argument("--no-deep-supervision", dest="deep_supervision", action="store_false", default=None)
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="float32 (default: mixed precision, float16 on CUDA, bfloat16 on CPUs with native bf16)")
    p.add_argument("--compile", dest="compile", action="store_true", default=None, help="torch.compile the network")
    p.add_argument("--no-validation", dest="final_validation", action="store_false", default=None,
                   help="skip predicting the validation cases at the end")
    p.add_argument("--no-tta", dest="mirror", action="store_false", default=None,
                   help="no test-time mirroring in the final validation")
    p.add_argument("--save-probabilities", action="store_true", default=None,
                   help="also write the validation probabilities (.npz), needed for ensembling")


def _add_predict(sub) -> None:
    p = _command(sub, _cmd_predict, "segment new images with a trained model",
                 description="Segment a folder of images (CASE_XXXX.ext files) or one image. The masks get the "
                             "inputs' geometry and file format. Exit code 1 if any input failed.")
    p.add_argument("-i", "--input", required=True, type=Path, help="folder of images, or one image file")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (or file, for one image)")
    p.add_argument("-d", "--dataset", default=None, help="dataset whose trained model to use")
    p.add_argument("-c", "--configuration", nargs="+", default=None,
                   help="configuration(s); several are ensembled (default: the chosen best configuration or ensemble)")
    p.add_argument("--no-postprocessing", dest="postprocessing", action="store_false",
                   help="do not apply the postprocessing chosen on the cross-validation")
    p.add_argument("-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: every trained fold)")
    p.add_argument("-m", "--model", type=Path, default=None, help="an exported model zip instead of -d")
    p.add_argument("--checkpoint", choices=("final", "best"), default="final", help="which checkpoint (default final)")
    p.add_argument("--no-tta", dest="mirror", action="store_false", help="no test-time mirroring (8x faster in 3D)")
    p.add_argument("--step", type=POSITIVE, default=0.5,
                   help="window step as a fraction of the patch, at most 1 (default 0.5)")
    p.add_argument("--save-probabilities", action="store_true", help="also write probabilities (.npz + .json)")
    _device(p)
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="predict in float32 on CUDA too (default: float16 on CUDA; CPUs always use float32)")
    _processes(p, 1, "preprocessing worker processes")


def _add_ensemble(sub) -> None:
    p = _command(sub, _cmd_ensemble, "average the saved probabilities of several prediction folders",
                 description="Average CASE.npz probabilities of several folders (written with "
                             "--save-probabilities) and write the label maps.")
    p.add_argument("-i", "--input", nargs="+", required=True, type=Path, help="two or more prediction folders")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--save-probabilities", action="store_true", help="also write the averaged probabilities")


def _add_export(sub) -> None:
    p = _command(sub, _cmd_export_model, "write a trained model to a portable zip",
                 description="Write the chosen best configuration (or ensemble) with its postprocessing, or "
                             "the configurations given with -c, to a zip that `autounet predict -m` takes.",
                 dataset=True)
    p.add_argument("-c", "--configuration", nargs="+", default=None,
                   help="configuration(s) to export (default: the chosen best, with its postprocessing)")
    p.add_argument("-o", "--output", required=True, type=Path, help="zip file to write")
    p.add_argument("-f", "--folds", nargs="+", default=None, help="folds (default: every trained fold)")
    p.add_argument("--checkpoint", choices=("final", "best"), default="final")
    _overwrite(p, "replace an existing zip")


def _add_import(sub) -> None:
    p = _command(sub, _cmd_import_model, "unpack an exported model zip",
                 description="Unpack a model zip into a folder, refusing members that would land outside it. "
                             "`autounet predict -m ZIP` does this by itself.")
    p.add_argument("zip", type=Path, help="the exported model")
    p.add_argument("-o", "--output", required=True, type=Path, help="folder to unpack into (empty or new)")
    _overwrite(p, "replace what the folder holds")


def _add_find_best(sub) -> None:
    p = _command(sub, _cmd_find_best_configuration, "choose the best configuration/ensemble and postprocessing",
                 description="Score every trained configuration and pair ensemble on the 5-fold cross-validation, pick "
                             "the best (ties go to the simpler), choose its postprocessing, print the predict command.",
                 dataset=True, processes=True)
    p.add_argument("-c", "--configurations", nargs="+", default=None, help="only these (default: every trained one)")
    p.add_argument("--no-ensembles", action="store_true", help="do not consider ensembles")


def _add_apply_postprocessing(sub) -> None:
    p = _command(sub, _cmd_apply_postprocessing, "apply postprocessing rules to a folder of masks",
                 description="Apply the rules find_best_configuration chose (its postprocessing file) to "
                             "every mask of a folder.", processes=True)
    p.add_argument("-i", "--input", required=True, type=Path)
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("-pp", "--postprocessing", required=True, type=Path, help="the rules file")
    _overwrite(p, "allow -o to be the input folder (its masks are replaced)")


def _add_evaluate(sub) -> None:
    p = _command(sub, _cmd_evaluate, "per-case, per-class metrics of predictions against references",
                 description="Dice, IoU, TP/FP/FN, HD95 and normalized surface Dice (mm) per case and class; "
                             "writes summary.json and metrics.csv.", processes=True)
    p.add_argument("-r", "--reference", required=True, type=Path, help="folder of reference label maps")
    p.add_argument("--prediction", required=True, type=Path, help="folder of predicted label maps")
    p.add_argument("-o", "--output", type=Path, default=None, help="where to write (default: the prediction folder)")
    p.add_argument("--nsd-tolerance", type=_number(float, 0, "0 or more"), default=1.0,
                   help="surface Dice tolerance in mm (default 1)")


def _add_report(sub) -> None:
    p = _command(sub, _cmd_report, "write an HTML report of a dataset's plan, training and selection", dataset=True)
    p.add_argument("-o", "--output", type=Path, default=None, help="folder (default: the dataset's results)")


def _add_demo(sub) -> None:
    p = _command(sub, _cmd_demo, "the whole pipeline on a generated example dataset (the README's main job)",
                 description="Generate an example dataset, plan and preprocess, train 5 folds of 2d and "
                             "3d_fullres, choose the best, predict and evaluate the held-out cases and write the "
                             "report, all within a time budget. Resumable.")
    _device(p)
    p.add_argument("--time-budget", default="5m", help="the demo's whole wall time (default 5m); the folds share "
                   "what preparation, selection, prediction and the report leave")
    p.add_argument("--epochs", type=POSITIVE_INT, default=None, help="a fixed schedule instead of the budget")
    p.add_argument("--iterations-per-epoch", type=POSITIVE_INT, default=None)


def build_parser() -> argparse.ArgumentParser:
    """The ``autounet`` program: one subcommand per pipeline step, each with --root and -v."""
    parser = argparse.ArgumentParser(
        prog="autounet", description="Self-configuring U-Net segmentation: plan, preprocess, train, predict.")
    parser.add_argument("--version", action="version", version=f"autounet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_example_dataset, _add_verify, _add_plan, _add_train, _add_predict, _add_ensemble, _add_export,
                _add_import, _add_find_best, _add_apply_postprocessing, _add_evaluate, _add_report, _add_demo):
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--root", type=Path, default=None, help="workspace root holding raw/, preprocessed/, results/ "
                       "(default: $AUTOUNET_ROOT or the current directory)")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autounet`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (AutounetError, ValueError) as e:
        print(f"autounet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable input, unwritable output, full disk: the path and the reason
        where = f"{e.filename}: " if e.filename else ""
        print(f"autounet {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autounet {args.command}: interrupted; finished work is kept, run the command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
