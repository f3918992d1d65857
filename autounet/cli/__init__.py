"""The ``autounet`` command: one program, one subcommand per pipeline step.

The parsers live in :mod:`autounet.cli.prepare_parsers` and :mod:`autounet.cli.model_parsers`,
what each subcommand does in :mod:`autounet.cli.commands`; nnU-Net's spellings are accepted
where they mean the same (:mod:`autounet.cli.nnunet` answers the others).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from autounet.version import __version__
from autounet.cli import model_parsers as model
from autounet.cli import prepare_parsers as prepare
from autounet.errors import AutounetError
from autounet.stopping import Stopped, stop_on_signals, stop_with_parent

QUIET_LOGGERS = ("numexpr",)  # "NumExpr defaulting to 2 threads." on every start


def build_parser() -> argparse.ArgumentParser:
    """The ``autounet`` program: one subcommand per pipeline step, each with --root and -v."""
    parser = argparse.ArgumentParser(
        prog="autounet", description="Self-configuring U-Net segmentation: plan, preprocess, train, predict. "
                                     "Start with `autounet run DATASET --time-budget 1h`.")
    parser.add_argument("--version", action="version", version=f"autounet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (prepare.add_run, prepare.add_example_dataset, prepare.add_convert_msd, prepare.add_convert_medmnist,
                prepare.add_verify,
                prepare.add_plan, model.add_train, model.add_predict, model.add_ensemble, model.add_export,
                model.add_import, model.add_find_best, model.add_apply_postprocessing, model.add_evaluate,
                model.add_report, prepare.add_demo):
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--root", type=Path, default=None, help="workspace root holding raw/, preprocessed/, results/ "
                       "(default: $AUTOUNET_ROOT, else nnU-Net's $nnUNet_raw with $nnUNet_preprocessed and "
                       "$nnUNet_results, else the current directory)")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _dataset_argument(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """DATASET given as the first argument or as ``-d``: one of them, once (``-d 1 2`` only where many fit)."""
    if not hasattr(args, "dataset_option"):
        return
    option = args.dataset_option
    sub = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001 (the subcommand's usage)
    if option is not None and args.dataset is not None:
        sub.error("give the dataset once: as the first argument or with -d, not both")
    given = option if option is not None else args.dataset
    if given is None:
        sub.error(f"the dataset is missing: autounet {args.command} DATASET (an id such as 900, a name or a folder)")
    many = isinstance(given, list)
    args.datasets = given if many else [given]
    args.dataset = given[0] if many else given
    if many and len(given) > 1 and args.command != "plan_and_preprocess":
        sub.error(f"one dataset at a time, got {' '.join(given)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autounet`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _dataset_argument(parser, args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with stop_on_signals():
            stop_with_parent()  # a fold process of `autounet run` stops when the run dies
            return func(args)
    except (AutounetError, ValueError) as e:
        print(f"autounet {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except OSError as e:  # unreadable input, unwritable output, full disk: the path and the reason
        where = f"{e.filename}: " if e.filename else ""
        print(f"autounet {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autounet {args.command}: interrupted; finished work is kept, run the command again to resume",
              file=sys.stderr)
        return 130
    except Stopped as e:  # a scheduler's SIGTERM (or the signal it was told to send): a clean stop
        again = "the same command with --continue" if args.command == "train" else "the same command again"
        print(f"autounet {args.command}: {e}; finished work is kept (a fold keeps its last finished epoch), "
              f"run {again} to resume", file=sys.stderr)
        return e.exit_code
