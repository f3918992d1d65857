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

__all__ = ["make_example_dataset", "verify_dataset", "plan_and_preprocess", "fingerprint_dataset", "train"]

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
