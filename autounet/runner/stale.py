"""Folds that outlive their data: before ``autounet run`` trains, each fold it would keep is
checked against the dataset as it is now (:mod:`autounet.io.provenance`). A fold trained on other
data (an edited label, a new plan or split, another raw folder of the same name) is moved to
``<configuration>/stale_fold_K`` and trained again, and the log says so, fold by fold; with
``--keep-stale`` it is kept, with a warning."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Sequence

from autounet.io.provenance import stale_folds
from autounet.locks import locked
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")


def set_aside_stale(paths: DatasetPaths, configurations: Sequence[str], folds: int, keep: bool = False,
                    wait: bool = False) -> list[str]:
    """Move the stale folds of ``configurations`` aside (their training starts again), or with
    ``keep`` only warn; returns one line per stale fold."""
    found = stale_folds(paths, configurations, range(folds), strict=True)
    for configuration, fold, text in found:
        if keep:
            log.warning("WARNING: %s; kept (--keep-stale)", text)
            continue
        folder, target = paths.trained.fold(configuration, fold), paths.trained.stale_fold(configuration, fold)
        with locked(folder.lock, f"fold {fold} of {configuration} of {paths.name}", wait):
            if target.exists():
                shutil.rmtree(target)
            os.replace(folder.root, target)
        (target / folder.lock.name).unlink(missing_ok=True)
        log.info("run: %s; training it again (the old fold is now %s)", text, target)
    return [text for _, _, text in found]
