"""``autounet run``: verify -> plan -> preprocess -> train every configuration worth training, all
folds -> choose the best configuration or ensemble and its postprocessing -> report, within one
wall-clock budget, resumable at any point (:mod:`autounet.runner.ledger` keeps the accounting)."""

from __future__ import annotations

import logging
import shlex
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Sequence

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.hardware import HardwareInfo, detect_hardware
from autounet.io.atomic import check_writable, read_json, remove_stale_temporaries
from autounet.locks import locked
from autounet.parallel import default_processes
from autounet.postprocess.find_best import find_best_configuration
from autounet.postprocess.selections import Selection
from autounet.preprocess.prepare import check_planned, plan_dataset, preprocess_planned
from autounet.report import write_report
from autounet.report.spending import run_spending
from autounet.runner.folds import NEEDS, fold_command, launcher, pending, train_concurrently, train_sequentially
from autounet.runner.ledger import Ledger, heartbeat, open_ledger
from autounet.runner.options import RunOptions, resolve_budget
from autounet.runner.networks import decide_networks, refined
from autounet.runner.stale import set_aside_stale
from autounet.runner.share import CASCADE, after_training_s, worth_training
from autounet.training.budget import NetworkChoice, describe_seconds
from autounet.training.spending import read_spending
from autounet.training.config import TrainingConfig
from autounet.training.fold import train_fold
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")


def _choose(ledger: Ledger | None, plans: Plans, options: RunOptions, budget_left: float | None, folds: int
            ) -> list[str]:
    """The configurations to train: the user's, the ones a restarted run chose, or the rule's."""
    if options.configurations:
        chosen = list(options.configurations)
        check_planned(plans, chosen)
        for c in chosen:
            if NEEDS.get(c) and NEEDS[c] not in chosen:
                chosen.insert(chosen.index(c), NEEDS[c])
        return chosen
    rule = worth_training(list(plans.configurations), budget_left, folds)
    recorded = [c for c in (ledger.record.configurations if ledger is not None else []) if c in plans.configurations]
    if recorded and not ledger.budget_changed:
        return recorded  # a restart trains what the run chose
    return rule + [c for c in recorded if c not in rule]  # another budget: the rule's choice, and what was begun


def _train_config(options: RunOptions) -> TrainingConfig:
    base = options.schedule or TrainingConfig()
    validation = replace(base.validation, save_probabilities=True, processes=0)
    return replace(base, validation=validation, time_budget_s=None, amp=base.amp and options.amp)


def _cuda_devices(hardware: HardwareInfo) -> list[str]:
    if hardware.device != "cuda":
        return []
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def _train(paths: DatasetPaths, jobs: list, options: RunOptions, hardware: HardwareInfo, ledger: Ledger,
           after_s: float, root: Path | None) -> None:
    gpus = _cuda_devices(hardware)
    time_left = lambda: ledger.left_s(after_s)  # noqa: E731
    networks = ledger.record.networks
    if len(gpus) > 1 and options.device in ("auto", "cuda"):
        log.info("run: %d GPUs, one fold on each at a time", len(gpus))
        schedule = options.schedule
        extra = ([] if schedule is None else ["--epochs", str(schedule.epochs), "--iterations-per-epoch",
                                              str(schedule.iterations_per_epoch)])
        extra += ([] if options.amp else ["--no-amp"]) + (["--wait"] if options.wait else [])
        variants = {c: n["variant"] for c, n in networks.items()}
        train_concurrently(pending(paths, jobs), gpus, launcher(str(paths.raw), root, extra, variants), time_left)
        return

    def network(configuration: str) -> NetworkChoice | None:
        if configuration not in networks:
            return None
        try:
            return NetworkChoice.from_json(networks[configuration])
        except (KeyError, TypeError, ValueError) as e:
            raise WorkspaceError(f"{ledger.path}: the network recorded for {configuration} is damaged ({e}); delete "
                                 "its 'networks' entry and run again to decide it anew") from e

    def finished(job) -> None:  # the fold's real speed is the estimate for the configuration's next folds
        if job[0] in networks:
            networks[job[0]] = refined(network(job[0]), read_spending(paths.trained.fold(*job))).to_json()

    train_sequentially(paths, jobs, _train_config(options), options.device, time_left,
                       partial(train_fold, wait=options.wait), network, finished)


def _decide(paths: DatasetPaths, ledger: Ledger, candidates: list[str], options: RunOptions, training_s: float | None,
            folds: int) -> list[str]:
    """The configurations a budgeted run trains and their networks, decided once and recorded;
    without a budget, the candidates with their planned networks."""
    record = ledger.record
    if training_s is None or options.schedule is not None:
        return candidates
    if record.networks and all(c in record.networks for c in record.configurations) and not ledger.budget_changed:
        return [c for c in candidates if c in record.networks]  # a restart trains what the run decided
    base = [c for c in candidates if c not in CASCADE]
    cascade = [c for c in candidates if c in CASCADE]
    base_s = training_s * len(base) / len(candidates)
    decided, record.decision = decide_networks(paths, base, _train_config(options), options.device, base_s, folds,
                                               keep_all=bool(options.configurations))
    networks = {c: n.to_json() for c, n in decided.items()}
    networks.update({c: n for c, n in record.networks.items() if paths.trained.configuration(c).is_dir()})  # begun
    record.networks = networks
    chosen = [c for c in base if c in record.networks]
    return chosen + (cascade if len(chosen) == len(base) else [])


def dry_run_commands(paths: DatasetPaths, configurations: Sequence[str], folds: int, training_s: float | None,
                     root: Path | None) -> list[str]:
    """The run as separate commands: preprocessing, one line per fold (a cluster job array's
    tasks; with a budget each fold gets the training time over the cascade's stages), selection
    and report."""
    stages = 2 if any(c in NEEDS for c in configurations) else 1
    share = None if training_s is None else training_s / stages
    where = ["--root", str(root)] if root is not None else []
    name = paths.name
    lines = [shlex.join(["autounet", "plan_and_preprocess", name, "-c", *configurations, *where])]
    lines += [shlex.join(fold_command(name, (c, f), share, root)) for c in configurations for f in range(folds)]
    lines.append(shlex.join(["autounet", "find_best_configuration", name, "-c", *configurations, *where]))
    lines.append(shlex.join(["autounet", "report", name, *where]))
    return lines


def run_dataset(paths: DatasetPaths, options: RunOptions = RunOptions(), root: Path | None = None) -> dict:
    """The whole pipeline on one dataset (see the module docstring); returns the selection's
    result with the report's path, the configurations trained and the wall time used. One run
    of a dataset at a time: the run holds its lock (:mod:`autounet.locks`)."""
    check_writable(paths.results)
    if options.dry_run:
        return _run(paths, options, root)
    with locked(paths.trained.run_lock, f"the run of {paths.name}", options.wait):
        if paths.trained.root.is_dir():  # what killed writers left (a live writer's temporaries are kept)
            remove_stale_temporaries(paths.trained.root, recursive=True)
        return _run(paths, options, root)


def _run(paths: DatasetPaths, options: RunOptions, root: Path | None) -> dict:
    hardware = detect_hardware(options.device)
    budget, statement = resolve_budget(options, hardware)
    log.info("autounet run %s: %s", paths.name, statement)
    ledger = None if options.dry_run else open_ledger(paths.trained.run_record, budget)
    after_s = options.after_training_s if options.after_training_s is not None else (
        after_training_s(budget) if budget is not None else 0.0)
    processes = options.processes or default_processes()
    with heartbeat(ledger) if ledger is not None else nullcontext():
        planned = plan_dataset(paths, processes, options.gpu_memory_gb, options.seed, network=options.network,
                               device=options.device, wait=options.wait)
        folds = len(read_json(paths.splits))
        left = None if budget is None else (ledger.left_s(after_s) if ledger else budget - after_s)
        candidates = _choose(ledger, planned.plans, options, left, folds)
        if ledger is None:
            return {"commands": dry_run_commands(paths, candidates, folds, left, root)}
        preprocess_planned(paths, planned, candidates, processes, seed=options.seed, wait=options.wait)
        if set_aside_stale(paths, candidates, folds, options.keep_stale, options.wait) and not options.keep_stale:
            log.info("run: the data changed since the run was made; it starts afresh (%s)",
                     "no time budget" if budget is None else f"{describe_seconds(budget)} from now")
            ledger.restart()
            chosen = _choose(ledger, planned.plans, options, ledger.left_s(after_s), folds)
            if set(chosen) - set(candidates):  # decided anew: a configuration the earlier run had left out
                preprocess_planned(paths, planned, chosen, processes, seed=options.seed, wait=options.wait)
            candidates = chosen
        spent = ledger.record.spending
        spent.setdefault("preparation_s", round(ledger.used_s(), 1))
        configurations = _decide(paths, ledger, candidates, options, ledger.left_s(after_s), folds)
        spent.setdefault("measurement_s", round(ledger.used_s() - spent["preparation_s"], 1))
        ledger.record.configurations = configurations
        left = ledger.left_s(after_s)
        log.info("run: training %s, %d folds each%s", " + ".join(configurations), folds,
                 "" if left is None else f", {describe_seconds(max(left, 0))} of training in all")
        _train(paths, [(c, f) for c in configurations for f in range(folds)], options, hardware, ledger, after_s, root)
        started = ledger.used_s()
        best = find_best_configuration(paths, configurations, True, processes)
        spent["selection_s"] = round(ledger.used_s() - started, 1)
        started = ledger.used_s()
        ledger.record.finished = True
        ledger.save()
        page = write_report(paths)
        spent["report_s"] = round(ledger.used_s() - started, 1)
    _summary(paths, best, page, ledger)
    return {"cross_validation": best, "report": page, "configurations": configurations, "used_s": ledger.used_s()}


def _summary(paths: DatasetPaths, best: Selection, page: Path, ledger: Ledger) -> None:
    spending = run_spending(paths, ledger.record.configurations, ledger.record.to_json())
    log.info("\n=== where the time went ===\n%s", "\n".join(spending.lines()))
    for warning in spending.warnings(best):
        log.warning("WARNING: %s", warning)
    log.info("\n=== autounet run %s finished: %s used%s ===\ncross-validation:\n%s\nchosen: %s\nreport: %s\n"
             "next: autounet predict -i IMAGES -o %s -d %s", paths.name, describe_seconds(ledger.used_s()),
             "" if ledger.record.budget_s is None else f" of {describe_seconds(ledger.record.budget_s)}",
             best.table(), best.describe(), page, best.prediction_output, paths.name)
