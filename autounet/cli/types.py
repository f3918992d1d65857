"""Argument types and the options several subcommands share, spelled the same everywhere."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Callable

from autounet.hardware import MIN_MEMORY_TARGET_GB

DATASET_HELP = "dataset id (900), name (Dataset900_Example) or raw folder path"
DEVICES = ("auto", "cpu", "cuda", "mps")
NNUNET_CHECKPOINT = r"(?:checkpoint_)?(final|best)(?:\.pth?)?"  # nnU-Net's file names, and autounet's kinds


def number(kind: type, low: float, what: str) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` number of at least ``low`` (else a usage error, exit
    code 2): ``nan`` passes every comparison and ``inf`` no setting means, so both are refused."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number ({what}), got {text}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


POSITIVE_INT, COUNT = number(int, 1, "at least 1"), number(int, 0, "0 or more")
POSITIVE = number(float, 1e-300, "positive")
MEMORY_GB = number(float, MIN_MEMORY_TARGET_GB, f"at least {MIN_MEMORY_TARGET_GB:g} (GB; below that no network fits)")


def processes_count(text: str) -> int:
    """``-p N``: worker processes; a plans name (nnU-Net's ``-p nnUNetPlans``) is explained."""
    if not text.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r}: autounet's -p is the number of worker processes (nnU-Net's -np); nnU-Net's plans "
            "identifier has no equivalent: autounet keeps one plan per dataset, so leave it out")
    return COUNT(text)


def checkpoint(text: str) -> str:
    """``final``/``best``, or nnU-Net's file names (``checkpoint_best.pth``)."""
    match = re.fullmatch(NNUNET_CHECKPOINT, text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: choose final or best (or nnU-Net's checkpoint file name)")
    return match.group(1)


def fold(text: str) -> int | str:
    """A fold: 0, 1, ... or ``all``."""
    if text == "all":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a fold is a number 0-4 (one per split) or 'all'")
    return int(text)


def add_dataset(p: argparse.ArgumentParser, many: bool = False) -> None:
    """DATASET as the first argument, or ``-d`` (nnU-Net's spelling; several for plan_and_preprocess)."""
    p.add_argument("dataset", nargs="?", default=None, help=DATASET_HELP)
    p.add_argument("-d", "--dataset", dest="dataset_option", nargs="+" if many else None, default=None,
                   metavar="DATASET", help="the same, as an option (nnU-Net's spelling)")


def add_processes(p: argparse.ArgumentParser, default: int | None = None, what: str = "worker processes",
                  aliases: tuple[str, ...] = ("-np",)) -> None:
    p.add_argument("-p", "--processes", *aliases, type=processes_count, default=default,
                   help=f"{what} (default: {default if default is not None else 'the number of cores'})")


def add_device(p: argparse.ArgumentParser, help: str = "default: CUDA, then MPS, then the CPU") -> None:
    p.add_argument("--device", "-device", default="auto", choices=DEVICES, help=help)


def add_wait(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--wait", action="store_true",
                   help=f"when another autounet process is {what}, wait for it to end (default: stop at once with "
                        "exit code 75, saying which process it is)")


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=what)


def add_time_budget(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    p.add_argument("--time-budget", default=default, metavar="DURATION", help=help + " (30m, 30min, 8h, 1h30m, 90s)")


def add_configurations(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-c", "--configurations", "--configuration", dest="configurations", nargs="+", default=None,
                   metavar="CONFIG", help=help)


def add_folds(p: argparse.ArgumentParser, help: str = "folds to use (default: every trained fold)") -> None:
    p.add_argument("-f", "--folds", nargs="+", default=None, metavar="FOLD", help=help)


def add_output(p: argparse.ArgumentParser, help: str, required: bool = True) -> None:
    p.add_argument("-o", "--output", required=required, type=Path, default=None, help=help)


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-chk", type=checkpoint, default="final", metavar="{final,best}",
                   help="which checkpoint (default final)")


def add_command(sub, func: Callable[[argparse.Namespace], int], help: str, description: str,
                examples: tuple[str, ...]) -> argparse.ArgumentParser:
    """The subcommand ``func`` handles (named as the function), with its examples under --help."""
    p = sub.add_parser(func.__name__, help=help, description=description,
                       epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p
