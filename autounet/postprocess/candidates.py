"""What selection may choose from: the configurations whose every fold is validated, where each
case's validation prediction lies, and which of two equally good entries is the simpler. Shared
by every task's selection."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")
TIE_TOLERANCE = 1e-4
SIMPLICITY = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def validation_folders(paths: DatasetPaths, configuration: str, splits: list[dict]) -> dict[str, Path]:
    """case id -> the validation folder holding its prediction; raises naming what to train."""
    out, missing = {}, []
    for k, split in enumerate(splits):
        fold = paths.trained.fold(configuration, k)
        if not fold.validation_summary.is_file():
            missing.append(k)
            continue
        for case in split["val"]:
            out[case] = fold.validation
    if missing:
        raise WorkspaceError(
            f"{configuration}: fold(s) {' '.join(map(str, missing))} have no validation results; run: "
            f"autounet train {paths.name} {configuration} {' '.join(map(str, missing))} --save-probabilities")
    return out


def trained_configurations(paths: DatasetPaths, plans: Plans, splits: list[dict]) -> tuple[list[str], list[str]]:
    """Configurations with every fold validated, and notes on the partially trained ones."""
    done, notes = [], []
    for config in plans.configurations:
        if not paths.trained.configuration(config).is_dir():
            continue
        try:
            validation_folders(paths, config, splits)
            done.append(config)
        except WorkspaceError as e:
            notes.append(str(e))
    return done, notes


def candidates(paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
               train_hint: str) -> list[str]:
    """The configurations to score: those given (each must have every fold validated), else every
    fully validated one (the others are logged); ``train_hint`` is the command named when none is."""
    if configurations:
        for c in configurations:
            validation_folders(paths, c, splits)  # raises naming the folds to train
        return list(configurations)
    configs, notes = trained_configurations(paths, plans, splits)
    for note in notes:
        log.warning("left out: %s", note)
    if not configs:
        raise WorkspaceError(f"no configuration of {paths.name} has all {len(splits)} folds validated; "
                             f"train first: {train_hint}" + ("\n" + "\n".join(notes) if notes else ""))
    return configs


def complexity(entry: dict) -> tuple:
    """Sort key of an entry's simplicity: fewer members first, then the order of ``SIMPLICITY``."""
    return (len(entry["members"]), [SIMPLICITY.index(m) if m in SIMPLICITY else len(SIMPLICITY) for m in entry["members"]])


def simplest_best(entries: dict[str, dict], score: str) -> str:
    """The highest ``score``; within TIE_TOLERANCE of it, the simplest entry."""
    top = max(e[score] for e in entries.values())
    return min((k for k, e in entries.items() if e[score] >= top - TIE_TOLERANCE), key=lambda k: complexity(entries[k]))
