#!/usr/bin/env python3
"""Benchmark what a wall-clock budget buys: ``autounet train --time-budget`` against nnU-Net v2 on CPU.

For each dataset and each budget B (minutes), fold 0 of the same split is trained once by each tool
for (about) B minutes of wall time, final sliding-window validation included, and the validation
Dice of the two is compared:

1. Datasets (``--datasets``): ``isbi`` = a copy of ``../shared/datasets/Dataset901_ISBI2012EM`` in
   ``OUT/raw`` (2D PNG, configuration ``2d``; the shared folder is never modified), ``example3d`` =
   ``autounet make_example_dataset OUT/raw/Dataset980_Budget3D --dims 3 --cases 20 --seed 0``
   (configuration ``3d_fullres``), ``echo`` = ``autounet make_example_dataset OUT/raw/Dataset982_Echo --video 100
   --cases 20`` (echocardiography-like 2D+time, two labelled frames per video, the rest ``ignore``;
   configuration ``2d``; its validation Dice is over the labelled frames). Written once, cached (marker files).
2. Each tool plans and preprocesses in its own way (cached; ``--repreprocess`` redoes it):
   ``autounet plan_and_preprocess ID --root OUT/autounet -p P -c CONFIG`` (autounet's own plan) and
   ``nnUNetv2_plan_and_preprocess -d ID -c CONFIG -np P -npfp P``.
3. Same split: autounet's ``preprocessed/DS/splits.json`` is copied to nnU-Net's
   ``nnUNet_preprocessed/DS/splits_final.json`` (the same JSON format) before every nnU-Net run.
4. nnU-Net's schedule is cut to fit the budget from a calibration, once per dataset and invocation:
   (a) ``nnUNetv2_train ID CONFIG 0 -tr nnUNetTrainer_anchorTiny`` with ``ANCHOR_EPOCHS=1
   ANCHOR_TRAIN_ITERS=N ANCHOR_VAL_ITERS=1 ANCHOR_SKIP_FINAL_VAL=1`` (N: ``--nnunet-calibration-iterations``,
   default 6): s/iteration = median of ``iter_wall_s`` without the first max(2, N/5); start-up =
   wall - N x s/iteration - validation steps; epoch
   overhead (checkpoint + progress plot) = mtime of ``progress.png`` - time stamp of the "Epoch time"
   log line; (b) ``nnUNetv2_train ... --val`` (final validation alone, from (a)'s checkpoint):
   final validation = process end - first time-stamped log line (``--nnunet-final-val estimate``:
   15% of the budget instead). Then ``ANCHOR_TRAIN_ITERS`` = 50 (fewer when not even 2 epochs of 50
   fit), ``ANCHOR_VAL_ITERS`` = 5 and ``ANCHOR_EPOCHS`` = as many as fit
   start-up + E x (I x s + 5 x val step) + (E - 1) x overhead + final validation <= budget;
   ``ANCHOR_SKIP_FINAL_VAL=0``, so nnU-Net validates fold 0 with its sliding window and writes
   ``validation/summary.json`` (``foreground_mean`` -> ``Dice``).
5. autounet: ``autounet train ID CONFIG 0 --root OUT/autounet --time-budget B --device cpu`` with an
   empty calibration cache (``AUTOUNET_CACHE``) per run, so its own speed measurement is inside its
   budget (``--share-autounet-calibration`` shares one cache); validation Dice from
   ``results/DS/CONFIG/fold_0/validation/summary.json``; epochs from ``checkpoint_final.pt``'s log,
   iterations per epoch from the training log's "budget ... -> N iterations (E epochs x I)" line.
6. Every run starts from an empty results folder; the two tools alternate (autounet first in odd
   rounds; ``--tools`` runs one alone). Per run: wall time and its ratio to the budget, iterations
   trained, validation foreground-mean and per-class Dice, peak PSS of the process tree (``_common.py``'s sampler).
   Prints a table and writes ``OUT/bench_budget.json``; logs in ``OUT/logs/``.

nnU-Net runs only as a subprocess from its own virtual environment; autounet never imports it.
Linux only (reads /proc).

    python benchmarks/bench_budget.py --nnunet-venv /root/nnunet-venv --datasets isbi --budgets 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

import bench_training as bt
from _common import fresh, have_smaps_rollup, link_dir, log_tail, remove, run_measured

REPO = bt.REPO
SHARED_DATASETS = (REPO.parent / "shared" / "datasets").resolve()
NNUNET_TRAINER = bt.NNUNET_TRAINER
DATASETS = {
    "isbi": {"id": 901, "name": "Dataset901_ISBI2012EM", "configuration": "2d",
             "copy_from": SHARED_DATASETS / "Dataset901_ISBI2012EM"},
    "example3d": {"id": 980, "name": "Dataset980_Budget3D", "configuration": "3d_fullres",
                  "make": ["--dims", "3", "--cases", "20", "--seed", "0"]},
    "echo": {"id": 982, "name": "Dataset982_Echo", "configuration": "2d",
             "make": ["--video", "100", "--cases", "20", "--seed", "0"]},
}
CAL_TRAIN_ITERS, CAL_WARMUP_DROPPED = 6, 2   # calibration defaults: iterations run, and dropped as warm-up
NNUNET_MAX_ITERS, NNUNET_VAL_ITERS, NNUNET_MIN_EPOCHS = 50, 5, 2
FINAL_VAL_FRACTION = 0.15                    # estimate of nnU-Net's final validation when not measured
DEFAULT_EPOCH_OVERHEAD_S = 1.5               # when the calibration's log cannot tell
TOOLS = ("autounet", "nnunet")
TOOL_LABEL = {"autounet": "autounet", "nnunet": "nnU-Net"}
_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?): ?(.*)$")


# --------------------------------------------------------------------------- layout

class BudgetLayout(bt.Layout):
    """bench_training's layout (``nnunet_env`` reads it) for one dataset of this benchmark."""

    def __init__(self, out: Path, name: str):
        super().__init__(out)
        self.name = name
        self.raw = (out / "raw" / name).resolve()
        self.raw_marker = out / "raw" / f".{name}.complete"
        self.nn_plans = self.nn_pre / name / "nnUNetPlans.json"
        self.nn_splits = self.nn_pre / name / "splits_final.json"
        self.nn_calib_results = self.nn_base / "calibration_results"
        self.au_plans = self.au_root / "preprocessed" / name / "plans.json"
        self.au_splits = self.au_root / "preprocessed" / name / "splits.json"
        self.au_results = self.au_root / "results" / name
        self.au_cache = out / "autounet_cache"
        self.pre_marker = out / f".{name}.preprocessed"
        self.logs = out / "logs"

    def nn_fold(self, results: Path, config: str) -> Path:
        return results / self.name / f"{NNUNET_TRAINER}__nnUNetPlans__{config}" / "fold_0"


# --------------------------------------------------------------------------- dataset + preprocessing

def ensure_dataset(args: argparse.Namespace, lay: BudgetLayout, ds: dict, env: dict[str, str]) -> dict:
    """Copy or write the dataset once; a marker holding its spec makes it reusable."""
    spec = {"copy_from": str(ds["copy_from"])} if "copy_from" in ds else {"make": ds["make"]}
    if lay.raw_marker.is_file() and lay.raw.is_dir():
        try:
            if json.loads(lay.raw_marker.read_text()) == spec:
                print(f"dataset: reusing {lay.raw}")
                return spec
        except ValueError:
            pass
    remove(lay.raw)
    remove(lay.raw_marker)
    remove(lay.pre_marker)
    lay.raw.parent.mkdir(parents=True, exist_ok=True)
    if "copy_from" in ds:
        if not (ds["copy_from"] / "dataset.json").is_file():
            sys.exit(f"{ds['copy_from']}/dataset.json not found")
        print(f"dataset: copying {ds['copy_from']} -> {lay.raw}")
        shutil.copytree(ds["copy_from"], lay.raw, symlinks=False)
    else:
        cmd = [sys.executable, "-m", "autounet.cli", "make_example_dataset", str(lay.raw), *ds["make"]]
        print("dataset: autounet", " ".join(cmd[3:]))
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    lay.raw_marker.write_text(json.dumps(spec))
    return spec


def ensure_preprocessed(args: argparse.Namespace, lay: BudgetLayout, ds: dict, env: dict[str, str],
                        spec: dict) -> dict:
    """Plan + preprocess with both tools once, each its own way (cached by a marker)."""
    config, p = ds["configuration"], str(args.processes)
    want = {"dataset": spec, "configuration": config, "processes": args.processes}
    if not args.repreprocess and lay.pre_marker.is_file() and lay.au_plans.is_file() and lay.nn_plans.is_file():
        try:
            done = json.loads(lay.pre_marker.read_text())
            if {k: done.get(k) for k in want} == want:
                print(f"preprocessing: reusing {lay.au_root / 'preprocessed' / lay.name} and {lay.nn_pre / lay.name}")
                return done.get("timing", {})
        except ValueError:
            pass
    remove(lay.pre_marker)
    timing = {}
    for d in (lay.nn_pre / lay.name, lay.au_root / "preprocessed" / lay.name, lay.au_results):
        remove(d)
    lay.nn_pre.mkdir(parents=True, exist_ok=True)
    lay.nn_results.mkdir(parents=True, exist_ok=True)
    link_dir(lay.raw, lay.nn_raw / lay.name)
    cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_plan_and_preprocess"), "-d", str(ds["id"]), "-c", config,
           "-np", p, "-npfp", p]
    log = lay.logs / f"{lay.name}_nnunet_plan_and_preprocess.log"
    rc, wall, _, s = run_measured(cmd, bt.nnunet_env(env, lay), log, args.interval)
    print(f"preprocessing: nnU-Net   {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB  rc={rc}")
    if rc != 0:
        sys.exit("nnUNetv2_plan_and_preprocess failed:\n" + log_tail(log))
    timing["nnunet"] = {"wall_s": wall, "peak_pss_mib": s.peak_pss_kib / 1024}
    link_dir(lay.raw, lay.au_root / "raw" / lay.name)
    cmd = [sys.executable, "-m", "autounet.cli", "plan_and_preprocess", str(ds["id"]), "--root", str(lay.au_root),
           "-p", p, "-c", config]
    log = lay.logs / f"{lay.name}_autounet_plan_and_preprocess.log"
    rc, wall, _, s = run_measured(cmd, env, log, args.interval)
    print(f"preprocessing: autounet  {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB  rc={rc}")
    if rc != 0:
        sys.exit("autounet plan_and_preprocess failed:\n" + log_tail(log))
    timing["autounet"] = {"wall_s": wall, "peak_pss_mib": s.peak_pss_kib / 1024}
    lay.pre_marker.write_text(json.dumps({**want, "timing": timing}))
    return timing


def copy_split(lay: BudgetLayout, config: str) -> dict:
    """autounet's splits.json -> nnU-Net's splits_final.json; checks the case ids exist on both sides."""
    splits = json.loads(lay.au_splits.read_text())
    if not isinstance(splits, list) or not splits or not {"train", "val"} <= set(splits[0]):
        sys.exit(f"{lay.au_splits}: not a list of {{'train': [...], 'val': [...]}}")
    lay.nn_splits.write_text(json.dumps(splits, indent=2))
    plans = json.loads(lay.nn_plans.read_text())
    data_folder = lay.nn_pre / lay.name / plans["configurations"][config]["data_identifier"]
    nn_ids = {f.name[:-4] for f in data_folder.glob("*.pkl")}
    fold0 = set(splits[0]["train"]) | set(splits[0]["val"])
    missing = sorted(fold0 - nn_ids)
    if nn_ids and missing:
        sys.exit(f"split case ids missing from nnU-Net's preprocessed data ({data_folder}): {missing[:5]}")
    return {"folds": len(splits), "fold0_train": len(splits[0]["train"]), "fold0_val": len(splits[0]["val"]),
            "fold0_val_ids": list(splits[0]["val"])}


# --------------------------------------------------------------------------- nnU-Net calibration + schedule

def _log_times(fold: Path) -> list[tuple[float, str]]:
    """(unix time, text) of every time-stamped line of nnU-Net's training_log_*.txt files in ``fold``."""
    out = []
    for f in sorted(fold.glob("training_log_*.txt")):
        for line in f.read_text(errors="replace").splitlines():
            m = _TS.match(line)
            if m:
                try:
                    out.append((datetime.fromisoformat(m.group(1)).timestamp(), m.group(2)))
                except ValueError:
                    pass
    return out


def _nnunet_train_env(args: argparse.Namespace, lay: BudgetLayout, env: dict[str, str], results: Path,
                      epochs: int, iters: int, val_iters: int, skip_final_val: bool) -> dict[str, str]:
    return dict(bt.nnunet_env(env, lay), nnUNet_results=str(results), nnUNet_extTrainer=str(args.nnunet_trainers),
                ANCHOR_EPOCHS=str(epochs), ANCHOR_TRAIN_ITERS=str(iters), ANCHOR_VAL_ITERS=str(val_iters),
                ANCHOR_SKIP_FINAL_VAL="1" if skip_final_val else "0",
                nnUNet_n_proc_DA=str(args.processes), nnUNet_def_n_proc=str(args.processes))


def nnunet_calibrate(args: argparse.Namespace, lay: BudgetLayout, ds: dict, env: dict[str, str]) -> dict:
    """Measure nnU-Net's s/iteration, start-up, epoch overhead and final validation on this dataset."""
    config = ds["configuration"]
    results = lay.nn_calib_results
    remove(results / lay.name)
    results.mkdir(parents=True, exist_ok=True)
    copy_split(lay, config)
    train = [str(args.nnunet_venv / "bin" / "nnUNetv2_train"), str(ds["id"]), config, "0", "-tr", NNUNET_TRAINER,
             "-device", "cpu"]
    log = lay.logs / f"{lay.name}_nnunet_calibration.log"
    cal: dict = {"log": str(log)}
    os.sync()
    n_iters = args.nnunet_calibration_iterations
    rc, wall, _, s = run_measured(train, _nnunet_train_env(args, lay, env, results, 1, n_iters, 1, True),
                                  log, args.interval)
    cal.update(returncode=rc, wall_s=wall, peak_pss_mib=s.peak_pss_kib / 1024)
    if rc != 0:
        sys.exit(f"nnU-Net calibration run failed (rc={rc}):\n" + log_tail(log))
    fold = lay.nn_fold(results, config)
    t = json.loads((fold / "anchor_timings.json").read_text())
    w = [float(v) for v in t["raw"]["iter_wall_s"]]
    v = [float(x) for x in t["raw"]["val_step_s"]]
    cal["iter_wall_s"], cal["val_step_s_samples"] = w, v
    dropped = max(CAL_WARMUP_DROPPED, len(w) // 5)  # longer calibrations drop the first fifth
    cal["s_per_iter"] = float(np.median(w[dropped:] if len(w) > dropped else w))
    cal["val_step_s"] = float(np.median(v)) if v else 0.0
    cal["patch_size"], cal["batch_size"] = t.get("patch_size"), t.get("batch_size")
    # everything that is not a (steady) training iteration or a validation step: imports, data, DA worker
    # start, warm-up of the first iterations, one epoch end, the final checkpoint, shutdown
    cal["startup_s"] = max(0.0, wall - len(w) * cal["s_per_iter"] - sum(v))
    stamps = _log_times(fold)
    ep_end = [ts for ts, text in stamps if text.startswith("Epoch time:")]
    png = fold / "progress.png"
    overhead = png.stat().st_mtime - ep_end[-1] if ep_end and png.is_file() else None
    cal["epoch_overhead_measured"] = overhead is not None and 0 <= overhead < 120
    cal["epoch_overhead_s"] = float(overhead) if cal["epoch_overhead_measured"] else DEFAULT_EPOCH_OVERHEAD_S

    cal["final_val_s"] = None
    if args.nnunet_final_val == "measure":
        vlog = lay.logs / f"{lay.name}_nnunet_calibration_val.log"
        for f in fold.glob("training_log_*.txt"):  # only the --val run's lines from here on
            f.rename(f.with_name("calibration_" + f.name))
        os.sync()
        t0 = time.time()
        rc, vwall, _, vs = run_measured(train + ["--val"],
                                        _nnunet_train_env(args, lay, env, results, 1, n_iters, 1, False),
                                        vlog, args.interval)
        t_end = t0 + vwall
        cal.update(val_run_returncode=rc, val_run_wall_s=vwall, val_run_peak_pss_mib=vs.peak_pss_kib / 1024,
                   val_run_log=str(vlog))
        vstamps = _log_times(fold)
        if rc == 0 and vstamps:
            cal["final_val_s"] = max(0.0, t_end - vstamps[0][0])
            summary = fold / "validation" / "summary.json"
            if summary.is_file():
                cal["val_run_fg_dice"] = json.loads(summary.read_text())["foreground_mean"]["Dice"]
        else:
            print(f"  nnU-Net final-validation timing failed (rc={rc}); estimating it as "
                  f"{FINAL_VAL_FRACTION:.0%} of the budget\n" + log_tail(vlog, 10), file=sys.stderr)
    print(f"  nnU-Net calibration: {cal['s_per_iter']:.2f} s/iteration (iterations {', '.join(f'{x:.1f}' for x in w)}), "
          f"val step {cal['val_step_s']:.2f} s, start-up {cal['startup_s']:.0f} s, epoch overhead "
          f"{cal['epoch_overhead_s']:.1f} s{'' if cal['epoch_overhead_measured'] else ' (default)'}, final validation "
          + (f"{cal['final_val_s']:.0f} s" if cal["final_val_s"] is not None else f"{FINAL_VAL_FRACTION:.0%} of the budget")
          + f"; patch {cal['patch_size']} batch {cal['batch_size']}", flush=True)
    return cal


def nnunet_schedule(cal: dict, budget_s: float) -> dict:
    """Epochs x iterations (x 5 validation steps) of nnU-Net that fit ``budget_s``."""
    s, v, o = cal["s_per_iter"], cal["val_step_s"], cal["epoch_overhead_s"]
    final_val = cal["final_val_s"] if cal.get("final_val_s") is not None else FINAL_VAL_FRACTION * budget_s
    val_iters = NNUNET_VAL_ITERS
    avail = budget_s - cal["startup_s"] - final_val

    def total(e: int, i: int) -> float:
        return cal["startup_s"] + e * (i * s + val_iters * v) + (e - 1) * o + final_val

    # the most iterations per epoch (<= 50) that still give NNUNET_MIN_EPOCHS epochs
    i_max = (avail + o - NNUNET_MIN_EPOCHS * (val_iters * v + o)) / (NNUNET_MIN_EPOCHS * s)
    if i_max >= 1:
        iters = int(min(NNUNET_MAX_ITERS, math.floor(i_max)))
        epochs = max(1, int(math.floor((avail + o) / (iters * s + val_iters * v + o))))
        note = ""
    else:  # not even 2 short epochs: one epoch of whatever fits (at least one iteration)
        epochs, iters = 1, max(1, int(math.floor((avail - val_iters * v) / s)) if avail > 0 else 1)
        note = "budget too small for 2 epochs"
        if total(1, iters) > budget_s:
            note = f"budget too small: even 1 x {iters} iteration(s) is expected to take {total(1, iters):.0f} s"
    return {"epochs": epochs, "iterations_per_epoch": iters, "val_iterations_per_epoch": val_iters,
            "final_val_s_assumed": final_val, "expected_s": total(epochs, iters), "note": note}


# --------------------------------------------------------------------------- runs

@dataclass
class BudgetRun:
    dataset: str
    configuration: str
    budget_min: float
    tool: str
    round: int
    position: int                   # 1: ran first in its round, 2: second
    returncode: int
    wall_s: float
    wall_over_budget: float
    cpu_s: float
    peak_pss_mib: float
    peak_rss_sum_mib: float
    peak_processes: int
    epochs: int | None = None
    iterations_per_epoch: int | None = None
    iterations: int | None = None
    val_iterations_per_epoch: int | None = None
    fg_dice: float | None = None
    dice_per_class: dict = field(default_factory=dict)
    val_cases: int | None = None
    schedule: dict = field(default_factory=dict)
    patch_size: list[int] = field(default_factory=list)
    batch_size: int | None = None
    aug_workers: int | None = None
    precision: str = ""
    log: str = ""
    error: str = ""


def _budget_arg(minutes: float) -> str:
    return f"{int(minutes)}m" if float(minutes).is_integer() else f"{round(minutes * 60)}s"


def _tag(minutes: float) -> str:
    return f"{minutes:g}min".replace(".", "p")


def run_autounet(args: argparse.Namespace, lay: BudgetLayout, ds: dict, env: dict[str, str], minutes: float,
                 rnd: int, pos: int) -> BudgetRun:
    config = ds["configuration"]
    remove(lay.au_results / config)  # a fresh results folder
    cache = lay.au_cache / ("shared" if args.share_autounet_calibration else f"{lay.name}_{_tag(minutes)}_round{rnd}")
    if not args.share_autounet_calibration:
        fresh(cache)
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "autounet.cli", "train", str(ds["id"]), config, "0", "--root", str(lay.au_root),
           "--time-budget", _budget_arg(minutes), "--device", "cpu"]
    if args.autounet_workers is not None:
        cmd += ["--num-workers", str(args.autounet_workers)]
    log = lay.logs / f"{lay.name}_{_tag(minutes)}_round{rnd}_autounet.log"
    rc, wall, cpu, s = run_measured(cmd, dict(env, AUTOUNET_CACHE=str(cache)), log, args.interval)
    budget_s = minutes * 60
    fold = lay.au_results / config / "fold_0"
    workers, prec, patch, batch = bt._autounet_log_facts(fold / "training_log.txt")
    r = BudgetRun(lay.name, config, minutes, "autounet", rnd, pos, rc, wall, wall / budget_s, cpu,
                  s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs, patch_size=patch, batch_size=batch,
                  aug_workers=workers, precision=prec, log=str(log))
    errors = []
    try:
        text = (fold / "training_log.txt").read_text(errors="replace")
        m = re.search(r"(budget [^\n]*?-> (\d+) iterations \((\d+) epochs x (\d+)\)[^\n]*)", text)
        if m:
            r.schedule = {"decision": m.group(1).strip(), "planned_iterations": int(m.group(2)),
                          "planned_epochs": int(m.group(3))}
            r.iterations_per_epoch = int(m.group(4))
        else:
            errors.append("no 'budget ... -> N iterations (E epochs x I)' line in training_log.txt")
        m = re.search(r"training \S+ fold \S+: .*?, (\d+) epochs x (\d+) iterations", text)
        if m and r.iterations_per_epoch is None:
            r.iterations_per_epoch = int(m.group(2))
        m = re.search(r"time budget (\d+) s, used (\d+) s by this process", text)
        if m:
            r.schedule["used_s_by_its_own_clock"] = int(m.group(2))
        m = re.search(r"calibration[^\n]*", text)
        if m:
            r.schedule["calibration"] = m.group(0).strip()
    except OSError as e:
        errors.append(f"no training log: {e}")
    try:
        import torch  # autounet's environment has it; imported here so the module loads without it

        state = torch.load(fold / "checkpoint_final.pt", map_location="cpu", weights_only=True)
        r.epochs = len(state["log"]["epoch"])
        cfg = json.loads(state.get("training_config", "{}"))
        r.val_iterations_per_epoch = cfg.get("val_iterations_per_epoch")
        if r.iterations_per_epoch is None:
            r.iterations_per_epoch = cfg.get("iterations_per_epoch")
        if r.iterations_per_epoch is not None:
            r.iterations = r.epochs * r.iterations_per_epoch
    except Exception as e:  # noqa: BLE001 -- report whatever went wrong, keep benchmarking
        errors.append(f"no final checkpoint log: {type(e).__name__}: {e}")
    try:
        summ = json.loads((fold / "validation" / "summary.json").read_text())
        r.fg_dice = float(summ["foreground_mean_dice"])
        r.dice_per_class = {str(k): float(v) for k, v in summ["mean_dice"].items()}
        r.val_cases = len(summ.get("cases", []))
    except (OSError, ValueError, KeyError) as e:
        errors.append(f"no validation summary: {type(e).__name__}: {e}")
    r.error = "; ".join(errors)
    return r


def run_nnunet(args: argparse.Namespace, lay: BudgetLayout, ds: dict, env: dict[str, str], minutes: float,
               rnd: int, pos: int, cal: dict) -> BudgetRun:
    config = ds["configuration"]
    sched = nnunet_schedule(cal, minutes * 60)
    fold = lay.nn_fold(lay.nn_results, config)
    remove(fold.parent)  # a fresh results folder
    copy_split(lay, config)
    cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_train"), str(ds["id"]), config, "0", "-tr", NNUNET_TRAINER,
           "-device", "cpu"]
    run_env = _nnunet_train_env(args, lay, env, lay.nn_results, sched["epochs"], sched["iterations_per_epoch"],
                                sched["val_iterations_per_epoch"], False)
    log = lay.logs / f"{lay.name}_{_tag(minutes)}_round{rnd}_nnunet.log"
    rc, wall, cpu, s = run_measured(cmd, run_env, log, args.interval)
    r = BudgetRun(lay.name, config, minutes, "nnunet", rnd, pos, rc, wall, wall / (minutes * 60), cpu,
                  s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs, epochs=sched["epochs"],
                  iterations_per_epoch=sched["iterations_per_epoch"],
                  iterations=sched["epochs"] * sched["iterations_per_epoch"],
                  val_iterations_per_epoch=sched["val_iterations_per_epoch"], schedule=sched,
                  aug_workers=args.processes, precision="float32", log=str(log))
    errors = []
    try:
        t = json.loads((fold / "anchor_timings.json").read_text())
        done = len(t["raw"]["iter_wall_s"])
        r.patch_size, r.batch_size = t.get("patch_size", []), t.get("batch_size")
        if done != r.iterations:
            errors.append(f"trained {done} iterations, not {r.iterations}")
            r.iterations = done
    except (OSError, ValueError, KeyError) as e:
        errors.append(f"no anchor_timings.json: {type(e).__name__}: {e}")
    try:
        summ = json.loads((fold / "validation" / "summary.json").read_text())
        r.fg_dice = float(summ["foreground_mean"]["Dice"])
        r.dice_per_class = {str(k): float(m["Dice"]) for k, m in summ["mean"].items()}
        r.val_cases = len(summ.get("metric_per_case", []))
    except (OSError, ValueError, KeyError, TypeError) as e:
        errors.append(f"no validation summary: {type(e).__name__}: {e}")
    r.error = "; ".join(errors)
    return r


# --------------------------------------------------------------------------- report

def _f(v, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def report(runs: list[BudgetRun]) -> list[dict]:
    hdr = (f"{'dataset':<24} {'budget':>6} {'round':>5}  {'tool':<9} {'wall s':>7} {'wall/budget':>11} "
           f"{'iterations':>16} {'fg Dice':>7}  {'Dice per class':<24} {'peak PSS MiB':>12}")
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        it = (f"{r.iterations} ({r.epochs}x{r.iterations_per_epoch})" if r.iterations is not None
              else f"? ({r.epochs}x?)")
        per_class = " ".join(f"{k}:{v:.3f}" for k, v in r.dice_per_class.items()) or "-"
        flag = "" if r.returncode == 0 and not r.error else f"  FAILED rc={r.returncode} {r.error} (see {r.log})"
        print(f"{r.dataset:<24} {r.budget_min:>4g}m {r.round:>6}  {TOOL_LABEL[r.tool]:<9} {r.wall_s:>7.0f} "
              f"{r.wall_over_budget:>11.2f} {it:>16} {_f(r.fg_dice, '7.4f')}  {per_class:<24} "
              f"{r.peak_pss_mib:>12.0f}{flag}")
    print("  iterations: epochs x iterations per epoch (autounet: its budget's choice; nnU-Net: ANCHOR values)")
    print("  fg Dice: fold-0 validation, full sliding-window prediction with mirroring, foreground mean")
    comparisons = []
    keys = sorted({(r.dataset, r.budget_min) for r in runs}, key=lambda k: (k[0], k[1]))
    if keys:
        print("\nper dataset and budget (medians over rounds; difference = autounet - nnU-Net)")
    for dsn, b in keys:
        row: dict = {"dataset": dsn, "budget_min": b}
        for tool in TOOLS:
            rs = [r for r in runs if r.dataset == dsn and r.budget_min == b and r.tool == tool and r.fg_dice is not None]
            row[tool] = {
                "fg_dice": float(np.median([r.fg_dice for r in rs])) if rs else None,
                "wall_over_budget": float(np.median([r.wall_over_budget for r in rs])) if rs else None,
                "iterations": float(np.median([r.iterations for r in rs if r.iterations is not None]))
                if any(r.iterations is not None for r in rs) else None,
                "peak_pss_mib": float(np.median([r.peak_pss_mib for r in rs])) if rs else None,
            }
        a, n = row["autounet"], row["nnunet"]
        row["fg_dice_autounet_minus_nnunet"] = (a["fg_dice"] - n["fg_dice"]
                                                if a["fg_dice"] is not None and n["fg_dice"] is not None else None)
        comparisons.append(row)
        print(f"  {dsn:<24} {b:>4g} min  autounet {_f(a['fg_dice'], '.4f')} ({_f(a['iterations'], '.0f')} it, "
              f"{_f(a['wall_over_budget'], '.2f')}x budget)   nnU-Net {_f(n['fg_dice'], '.4f')} "
              f"({_f(n['iterations'], '.0f')} it, {_f(n['wall_over_budget'], '.2f')}x budget)   "
              f"difference {_f(row['fg_dice_autounet_minus_nnunet'], '+.4f')}")
    return comparisons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[10, 20, 40],
                    help="wall-clock budgets in minutes (default 10 20 40)")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS),
                    help="default: isbi example3d echo")
    ap.add_argument("--out", type=Path, default=Path("bench_out") / "budget",
                    help="output folder (default ./bench_out/budget)")
    ap.add_argument("--nnunet-venv", type=Path, default=Path.home() / "nnunet-venv",
                    help="virtualenv holding nnunetv2 (default ~/nnunet-venv)")
    ap.add_argument("--nnunet-trainers", type=Path, default=bt.DEFAULT_TRAINERS,
                    help=f"folder holding {NNUNET_TRAINER}.py (default {bt.DEFAULT_TRAINERS})")
    ap.add_argument("--nnunet-final-val", choices=("measure", "estimate"), default="measure",
                    help="nnU-Net's final validation time for its schedule: measured once per dataset with "
                         f"'nnUNetv2_train ... --val', or {FINAL_VAL_FRACTION * 100:.0f}%% of the budget (default measure)")
    ap.add_argument("--nnunet-calibration-iterations", type=int, default=CAL_TRAIN_ITERS,
                    help=f"training iterations of nnU-Net's calibration run (default {CAL_TRAIN_ITERS}); more give "
                         "a steadier s/iteration and so a schedule that fills the budget better")
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                    help="which tools to run (default both; one alone checks a single cell again)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per dataset and budget (default 1)")
    ap.add_argument("-p", "--processes", type=int, default=2,
                    help="preprocessing processes of both tools and nnU-Net's DA workers (default 2)")
    ap.add_argument("--autounet-workers", type=int, default=None,
                    help="pass --num-workers to autounet (default: its own choice, cores // 2 on CPU)")
    ap.add_argument("--share-autounet-calibration", action="store_true",
                    help="one autounet calibration cache for all runs (default: an empty one per run, so autounet "
                         "measures its speed inside every budget)")
    ap.add_argument("--repreprocess", action="store_true", help="plan and preprocess again even if cached")
    ap.add_argument("--interval", type=float, default=0.2, help="memory sampling interval in seconds (default 0.2)")
    args = ap.parse_args(argv)
    if not have_smaps_rollup():
        ap.error("needs Linux >= 4.14 (/proc/<pid>/smaps_rollup)")
    if args.repeats < 1 or any(b <= 0 for b in args.budgets):
        ap.error("--repeats and every budget must be > 0")
    if args.nnunet_calibration_iterations <= CAL_WARMUP_DROPPED:
        ap.error(f"--nnunet-calibration-iterations must be > {CAL_WARMUP_DROPPED} (the first are dropped as warm-up)")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.nnunet_venv = args.nnunet_venv.resolve()
    args.nnunet_trainers = args.nnunet_trainers.resolve()
    for exe in ("nnUNetv2_plan_and_preprocess", "nnUNetv2_train"):
        if not (args.nnunet_venv / "bin" / exe).is_file():
            ap.error(f"{args.nnunet_venv}/bin/{exe} not found (--nnunet-venv)")
    if not (args.nnunet_trainers / f"{NNUNET_TRAINER}.py").is_file():
        ap.error(f"{args.nnunet_trainers}/{NNUNET_TRAINER}.py not found (--nnunet-trainers)")

    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    t_start = time.perf_counter()
    runs: list[BudgetRun] = []
    per_dataset: dict[str, dict] = {}
    out_path = args.out / "bench_budget.json"
    rnd = 0

    def write_json() -> None:
        out = {
            "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "budgets_min": args.budgets, "datasets": per_dataset, "repeats": args.repeats, "tools": args.tools,
            "nnunet_calibration_iterations": args.nnunet_calibration_iterations,
            "processes": args.processes, "nnunet_trainer": NNUNET_TRAINER,
            "nnunet_final_val": args.nnunet_final_val,
            "autounet_calibration": "shared cache" if args.share_autounet_calibration else "empty cache per run",
            "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "sampling_interval_s": args.interval,
            "runs": [asdict(r) for r in runs],
            "comparisons": comparisons,
            "total_s": time.perf_counter() - t_start,
        }
        out_path.write_text(json.dumps(out, indent=2))

    comparisons: list[dict] = []
    tools = [t for t in TOOLS if t in args.tools]  # in TOOLS' order, whatever the command line's
    for key in args.datasets:
        ds = DATASETS[key]
        lay = BudgetLayout(args.out, ds["name"])
        print(f"\n=== {key}: {ds['name']}, configuration {ds['configuration']} ===")
        spec = ensure_dataset(args, lay, ds, env)
        prep = ensure_preprocessed(args, lay, ds, env, spec)
        split = copy_split(lay, ds["configuration"])
        print(f"  split: fold 0 = {split['fold0_train']} training / {split['fold0_val']} validation cases "
              f"(autounet's splits.json -> {lay.nn_splits})")
        cal = nnunet_calibrate(args, lay, ds, env) if "nnunet" in args.tools else None
        per_dataset[key] = {"name": ds["name"], "id": ds["id"], "configuration": ds["configuration"],
                            "path": str(lay.raw), "spec": spec, "preprocessing": prep, "split": split,
                            "nnunet_calibration": cal}
        write_json()
        for minutes in args.budgets:
            for _ in range(args.repeats):
                rnd += 1
                order = tools if rnd % 2 == 1 else tools[::-1]
                for pos, tool in enumerate(order, 1):
                    if tool == "nnunet":
                        sc = nnunet_schedule(cal, minutes * 60)
                        print(f"  round {rnd}: nnU-Net, {minutes:g} min -> {sc['epochs']} epochs x "
                              f"{sc['iterations_per_epoch']} iterations (+{sc['val_iterations_per_epoch']} val), "
                              f"expected {sc['expected_s']:.0f} s {sc['note']}", flush=True)
                    else:
                        print(f"  round {rnd}: autounet --time-budget {_budget_arg(minutes)}", flush=True)
                    os.sync()
                    r = (run_nnunet(args, lay, ds, env, minutes, rnd, pos, cal) if tool == "nnunet"
                         else run_autounet(args, lay, ds, env, minutes, rnd, pos))
                    runs.append(r)
                    ok = r.returncode == 0 and not r.error
                    print(f"    {TOOL_LABEL[tool]:<9} wall {r.wall_s:6.0f} s ({r.wall_over_budget:.2f}x budget)  "
                          f"{_f(r.iterations, '')} iterations ({r.epochs}x{r.iterations_per_epoch})  "
                          f"fg Dice {_f(r.fg_dice, '.4f')}  peak PSS {r.peak_pss_mib:.0f} MiB  "
                          f"{'ok' if ok else f'FAILED rc={r.returncode} {r.error}'}", flush=True)
                    if r.returncode != 0:
                        print(log_tail(Path(r.log)), file=sys.stderr)
                    write_json()
    comparisons = report(runs)
    write_json()
    print(f"\nwritten {out_path}  (total {time.perf_counter() - t_start:.0f} s)")
    return 0 if runs and all(r.returncode == 0 and not r.error for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
