"""A dataset from raw files to preprocessed arrays: verify, fingerprint, plan, split, preprocess."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ContextManager, NamedTuple, Sequence

from autounet.autoplan.fingerprint import fingerprint_dataset
from autounet.autoplan.planner import plan_for_machine
from autounet.autoplan.plans import Plans
from autounet.autoplan.splits import ensure_splits, strata_of
from autounet.autoplan.summary import format_plan_summary
from autounet.hardware import detect_hardware
from autounet.io.atomic import check_writable, write_json
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.verify import check_layout, load_targets
from autounet.locks import locked
from autounet.parallel import default_processes
from autounet.preprocess.tasks import task_for
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")


class Planned(NamedTuple):
    """A planned dataset: its plans, and the raw dataset they were made from."""

    plans: Plans
    spec: DatasetSpec
    cases: list[CaseFiles]


def check_planned(plans: Plans, configurations: Sequence[str] | None) -> None:
    """ValueError unless every configuration named is in the plan."""
    unknown = sorted(set(configurations or ()) - set(plans.configurations))
    if unknown:
        raise ValueError(f"configuration(s) {unknown} are not in the plan; planned: {sorted(plans.configurations)}")


def preprocessing_locked(paths: DatasetPaths, wait: bool = False) -> ContextManager[None]:
    """The dataset's preprocessing lock (:mod:`autounet.locks`): one process plans and
    preprocesses it at a time; another raises LockedError, or with ``wait`` waits."""
    check_writable(paths.preprocessed)
    return locked(paths.preprocessing_lock, f"preprocessing of {paths.name}", wait)


def plan_dataset(paths: DatasetPaths, processes: int, gpu_memory_gb: float | None = None, seed: int = 0,
                 splits_file: Path | None = None, network: str = "plain", device: str = "auto",
                 force: bool = False, wait: bool = False) -> Planned:
    """Verify, fingerprint, plan and split; returns the plans with the dataset's spec and cases
    (what :func:`preprocess_planned` takes). Holds the preprocessing lock meanwhile."""
    check_writable(paths.preprocessed)
    spec, cases = check_layout(paths.raw, processes)  # reads only: a dataset that fails writes nothing, not even a lock
    with preprocessing_locked(paths, wait):
        fp = fingerprint_dataset(paths, (spec, cases), processes, seed, force)
        plans = plan_for_machine(fp, spec, detect_hardware(device), gpu_memory_gb, network)
        write_json(paths.plans, plans.to_json())
        strata = strata_of(spec.task, load_targets(spec, cases)[0]) if spec.case_level else None
        ensure_splits(paths.splits, [c.case_id for c in cases], seed=seed, user_file=splits_file, strata=strata)
    return Planned(plans, spec, cases)


def preprocess_planned(paths: DatasetPaths, planned: Planned, configurations: Sequence[str] | None, processes: int,
                       force: bool = False, seed: int = 0, wait: bool = False) -> None:
    """Preprocess every case for ``configurations`` (default: every planned one) of what
    :func:`plan_dataset` returned; resumable. Holds the preprocessing lock meanwhile."""
    plans, spec, cases = planned
    with preprocessing_locked(paths, wait):
        stats = task_for(plans).preprocess(spec, cases, plans, paths,
                                           list(configurations) if configurations else None, processes, force, seed)
    log.info("preprocessed %d case(s), %d already done, into %s", stats["done"], stats["skipped"], paths.preprocessed)


def prepare_dataset(paths: DatasetPaths, processes: int | None = None, gpu_memory_gb: float | None = None,
                    configurations: Sequence[str] | None = None, force: bool = False, seed: int = 0,
                    splits_file: Path | None = None, preprocess: bool = True, network: str = "plain",
                    device: str = "auto", wait: bool = False) -> Plans:
    """Verify, fingerprint, plan, split and preprocess the dataset at ``paths``; resumable.

    configurations : the planned ones to preprocess (default all). force : redo the fingerprint
    and every case. gpu_memory_gb : the memory to plan for (None: read from the device present).
    wait : another process preprocessing the dataset is waited for instead of an error.
    """
    processes = processes or default_processes()
    planned = plan_dataset(paths, processes, gpu_memory_gb, seed, splits_file, network, device, force, wait)
    plans = planned.plans
    check_planned(plans, configurations)
    if preprocess:
        preprocess_planned(paths, planned, configurations, processes, force, seed, wait)
    log.info("%s", format_plan_summary(plans))
    return plans
