#!/usr/bin/env python3
"""Benchmark training throughput and peak memory: ``autounet train`` against ``nnUNetv2_train`` on CPU.

Both tools train the same network (nnU-Net's 3d_fullres plan: patch size, batch size, stages,
features, kernels, strides, convolutions per stage) on the same dataset, data loading and
augmentation included:

1. The dataset (20 anisotropic cases, ``autounet make_example_dataset --dims 3 --anisotropic``,
   default shape) is written once and cached under ``--out``.
2. Both tools plan and preprocess it once (cached; ``--repreprocess`` redoes it):
   ``nnUNetv2_plan_and_preprocess -d 970 -c 3d_fullres -np P -npfp P`` and
   ``autounet plan_and_preprocess 970 --root OUT/autounet -p P``.
3. autounet's ``plans.json`` configuration ``3d_fullres`` gets nnU-Net's ``patch_size``,
   ``batch_size`` and network (``features_per_stage``, ``kernel_sizes``, ``strides``,
   ``convs_per_stage_encoder``/``_decoder``); both plans and the changes are printed. None of
   these fields shapes the preprocessed arrays, so autounet's preprocessed data stay valid.
4. For ``--repeats`` rounds, alternating:
   (a) nnU-Net, ``nnUNetv2_train 970 3d_fullres 0 -tr nnUNetTrainer_anchorTiny -device cpu`` with
       one epoch of N (``--iterations``) training iterations and one validation iteration, no
       final validation, ``nnUNet_n_proc_DA=P``; s/iteration = median of the per-iteration wall
       times in ``anchor_timings.json`` after dropping the first 3 (warm-up);
   (b) autounet default (mixed precision: bfloat16 autocast on CPUs with native bf16, else
       float32), ``autounet train 970 3d_fullres 0 --device cpu --epochs 3
       --iterations-per-epoch N --val-iterations-per-epoch 1 --no-validation``; s/iteration =
       median over epochs 1.. (epoch 0 dropped as warm-up) of the epoch times stored in the
       final checkpoint's log, divided by N;
   (c) autounet with ``--no-amp`` (float32, the same arithmetic as nnU-Net on CPU).
   Every run starts from an empty results folder. Peak memory: the maximum of the summed PSS of
   the process and all its descendants (DA workers included), sampled every 50 ms.
5. Prints a table of every run, medians, ratios (throughput autounet / nnU-Net, peak PSS
   autounet / nnU-Net), the augmentation workers each tool used, and writes
   ``OUT/bench_training.json``.

nnU-Net runs only as a subprocess from its own virtual environment with the tiny trainer of
``../shared/nnunet-reference/trainers`` (``--nnunet-trainers``); autounet never imports it.
Linux only (reads /proc).

    python benchmarks/bench_training.py --nnunet-venv /root/nnunet-venv --repeats 2 --iterations 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from _common import fresh, have_smaps_rollup, link_dir, log_tail, remove, run_measured

DATASET_ID = 970
DATASET_NAME = "Dataset970_TrainBench"
CONFIG = "3d_fullres"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRAINERS = (REPO.parent / "shared" / "nnunet-reference" / "trainers").resolve()
NNUNET_TRAINER = "nnUNetTrainer_anchorTiny"
NNUNET_WARMUP_ITERS = 3
VARIANTS = {  # name -> (tool, extra autounet train arguments)
    "nnunet": ("nnunet", []),
    "autounet": ("autounet", []),
    "autounet_fp32": ("autounet", ["--no-amp"]),
}
VARIANT_LABEL = {"nnunet": "nnU-Net (fp32)", "autounet": "autounet (default amp)", "autounet_fp32": "autounet --no-amp"}


# --------------------------------------------------------------------------- layout

class Layout:
    """Every path under ``--out``, for one dataset and configuration (default: this benchmark's;
    ``bench_inference.py`` passes others)."""

    def __init__(self, out: Path, dataset_id: int = DATASET_ID, name: str = DATASET_NAME, config: str = CONFIG):
        self.out = out
        self.dataset_id, self.name, self.config = dataset_id, name, config
        self.raw = (out / "raw" / name).resolve()
        self.raw_marker = out / "raw" / f".{name}.complete"
        self.nn_raw = out / "nnunet_raw"  # nnU-Net's raw layout: links to the very same dataset folders
        self.nn_base = out / "nnunet"
        self.nn_pre = self.nn_base / "preprocessed"
        self.nn_results = self.nn_base / "results"
        self.nn_plans = self.nn_pre / name / "nnUNetPlans.json"
        self.au_root = out / "autounet"
        self.au_plans = self.au_root / "preprocessed" / name / "plans.json"
        self.au_plans_original = self.au_plans.with_name("plans.autounet_original.json")
        self.au_results = self.au_root / "results" / name
        self.pre_marker = out / f".{name}.preprocessed"
        self.logs = out / "logs" / "training"


def nnunet_env(env: dict[str, str], lay: Layout) -> dict[str, str]:
    return dict(env, nnUNet_raw=str(lay.nn_raw), nnUNet_preprocessed=str(lay.nn_pre),
                nnUNet_results=str(lay.nn_results))


# --------------------------------------------------------------------------- dataset + preprocessing

def ensure_dataset(args: argparse.Namespace, lay: Layout, env: dict[str, str]) -> dict:
    """Write the dataset once; a marker written after success makes it reusable."""
    spec = {"dims": 3, "anisotropic": True, "cases": args.cases, "shape": None, "seed": 0}
    if lay.raw_marker.is_file() and lay.raw.is_dir():
        try:
            if json.loads(lay.raw_marker.read_text()) == spec:
                print(f"dataset: reusing {lay.raw}")
                return spec
        except ValueError:
            pass
    remove(lay.raw)
    remove(lay.pre_marker)
    lay.raw.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "autounet.cli", "make_example_dataset", str(lay.raw), "--dims", "3",
           "--anisotropic", "--cases", str(args.cases), "--seed", "0"]
    print("dataset:", " ".join(cmd[2:]))
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    lay.raw_marker.write_text(json.dumps(spec))
    return spec


def ensure_preprocessed(args: argparse.Namespace, lay: Layout, env: dict[str, str], spec: dict) -> dict:
    """Plan + preprocess with both tools once (cached by a marker holding the dataset spec)."""
    want = {"dataset": spec, "nnunet": args.nnunet_venv is not None}
    if not args.repreprocess and lay.pre_marker.is_file() and lay.au_plans.is_file() \
            and (args.nnunet_venv is None or lay.nn_plans.is_file()):
        try:
            done = json.loads(lay.pre_marker.read_text())
            if done.get("dataset") == spec and (done.get("nnunet") or not want["nnunet"]):
                print(f"preprocessing: reusing {lay.au_root} and {lay.nn_pre}")
                return done.get("timing", {})
        except ValueError:
            pass
    remove(lay.pre_marker)
    timing = {}
    p = str(args.processes)
    if args.nnunet_venv is not None:
        fresh(lay.nn_base)
        lay.nn_pre.mkdir()
        lay.nn_results.mkdir()
        link_dir(lay.raw, lay.nn_raw / lay.name)
        cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_plan_and_preprocess"), "-d", str(lay.dataset_id),
               "-c", lay.config, "-np", p, "-npfp", p]
        rc, wall, _, s = run_measured(cmd, nnunet_env(env, lay), lay.logs / "nnunet_plan_and_preprocess.log", args.interval)
        print(f"preprocessing: nnU-Net   {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB  rc={rc}")
        if rc != 0:
            sys.exit("nnUNetv2_plan_and_preprocess failed:\n" + log_tail(lay.logs / "nnunet_plan_and_preprocess.log"))
        timing["nnunet"] = {"wall_s": wall, "peak_pss_mib": s.peak_pss_kib / 1024}
    fresh(lay.au_root)
    link_dir(lay.raw, lay.au_root / "raw" / lay.name)
    cmd = [sys.executable, "-m", "autounet.cli", "plan_and_preprocess", str(lay.dataset_id), "--root", str(lay.au_root),
           "-p", p]
    rc, wall, _, s = run_measured(cmd, env, lay.logs / "autounet_plan_and_preprocess.log", args.interval)
    print(f"preprocessing: autounet  {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB  rc={rc}")
    if rc != 0:
        sys.exit("autounet plan_and_preprocess failed:\n" + log_tail(lay.logs / "autounet_plan_and_preprocess.log"))
    timing["autounet"] = {"wall_s": wall, "peak_pss_mib": s.peak_pss_kib / 1024}
    lay.au_plans_original.write_text(lay.au_plans.read_text())
    lay.pre_marker.write_text(json.dumps({**want, "timing": timing}))
    return timing


# --------------------------------------------------------------------------- plans

AU_NET_FIELDS = ("features_per_stage", "kernel_sizes", "strides", "convs_per_stage_encoder", "convs_per_stage_decoder")


def nnunet_config(lay: Layout) -> dict:
    """nnU-Net's plan of ``lay.config`` (3d_fullres here), in autounet's field names."""
    plans = json.loads(lay.nn_plans.read_text())
    c = plans["configurations"][lay.config]
    kw = c["architecture"]["arch_kwargs"]
    n = int(kw["n_stages"])
    out = {
        "patch_size": [int(v) for v in c["patch_size"]],
        "batch_size": int(c["batch_size"]),
        "network": {
            "features_per_stage": [int(v) for v in kw["features_per_stage"]],
            "kernel_sizes": [[int(k) for k in ks] for ks in kw["kernel_sizes"]],
            "strides": [[int(s) for s in st] for st in kw["strides"]],
            "convs_per_stage_encoder": [int(v) for v in kw["n_conv_per_stage"]],
            "convs_per_stage_decoder": [int(v) for v in kw["n_conv_per_stage_decoder"]],
        },
        # for the record only
        "n_stages": n,
        "network_class": c["architecture"]["network_class_name"],
        "spacing": c["spacing"],
        "median_image_size_in_voxels": c["median_image_size_in_voxels"],
        "transpose_forward": plans["transpose_forward"],
        "batch_dice": c.get("batch_dice"),
    }
    net = out["network"]
    for k, v in net.items():
        want = n - 1 if k == "convs_per_stage_decoder" else n
        if len(v) != want:
            raise ValueError(f"{lay.nn_plans}: {k} has {len(v)} entries, expected {want} (n_stages {n})")
    return out


def autounet_config(plans: dict, config: str = CONFIG) -> dict:
    c = plans["configurations"][config]
    return {"patch_size": c["patch_size"], "batch_size": c["batch_size"],
            "network": {k: c["network"][k] for k in AU_NET_FIELDS},
            "n_stages": len(c["network"]["features_per_stage"]), "block": c["network"].get("block"),
            "spacing": c["spacing"], "median_shape": c["median_shape"],
            "transpose_forward": plans["transpose_forward"], "batch_dice": c.get("batch_dice"),
            "mirror_axes": c.get("mirror_axes")}


def _fmt(v) -> str:
    return json.dumps(v, separators=(",", ":"))


def match_plans(lay: Layout) -> dict:
    """Rewrite autounet's ``lay.config`` (3d_fullres here) patch, batch and network with nnU-Net's; print both
    and the changes."""
    if not lay.au_plans_original.is_file():  # preprocessed by an older run of this script
        lay.au_plans_original.write_text(lay.au_plans.read_text())
    original = json.loads(lay.au_plans_original.read_text())
    nn = nnunet_config(lay)
    au = autounet_config(original, lay.config)
    changes = []
    new = json.loads(json.dumps(original))
    c = new["configurations"][lay.config]
    for key in ("patch_size", "batch_size"):
        if c[key] != nn[key]:
            changes.append(f"{key}: {_fmt(c[key])} -> {_fmt(nn[key])}")
        c[key] = nn[key]
    for key in AU_NET_FIELDS:
        if c["network"][key] != nn["network"][key]:
            changes.append(f"network.{key}: {_fmt(c['network'][key])} -> {_fmt(nn['network'][key])}")
        c["network"][key] = nn["network"][key]
    lay.au_plans.write_text(json.dumps(new, indent=2))

    print(f"\nplans, configuration {lay.config}")
    rows = [("patch_size", nn["patch_size"], au["patch_size"]), ("batch_size", nn["batch_size"], au["batch_size"]),
            *[(k, nn["network"][k], au["network"][k]) for k in AU_NET_FIELDS],
            ("spacing", nn["spacing"], au["spacing"]),
            ("median shape", nn["median_image_size_in_voxels"], au["median_shape"]),
            ("transpose_forward", nn["transpose_forward"], au["transpose_forward"]),
            ("batch_dice", nn["batch_dice"], au["batch_dice"]),
            ("network", nn["network_class"], f"{au['block']} U-Net")]
    for name, a, b in rows:
        print(f"  {name:<24} nnU-Net {_fmt(a):<40} autounet {_fmt(b)}")
    print("  autounet mirror_axes (kept):", _fmt(au["mirror_axes"]))
    if changes:
        print(f"changed in {lay.au_plans} (original kept in {lay.au_plans_original.name}):")
        for ch in changes:
            print("  ", ch)
    else:
        print("autounet's plan already equals nnU-Net's for these fields: nothing changed")
    warnings = []
    if [float(v) for v in nn["spacing"]] != [float(v) for v in au["spacing"] if v is not None]:  # 2d: [null, y, x]
        warnings.append(f"target spacings differ (nnU-Net {nn['spacing']}, autounet {au['spacing']}): "
                        "the preprocessed arrays differ in size")
    if list(nn["transpose_forward"]) != list(au["transpose_forward"]):
        warnings.append(f"transpose_forward differs (nnU-Net {nn['transpose_forward']}, autounet "
                        f"{au['transpose_forward']}): the same patch covers different axes")
    if "PlainConvUNet" not in nn["network_class"]:
        warnings.append(f"nnU-Net's network is {nn['network_class']}, autounet's block is {au['block']}")
    for w in warnings:
        print("WARNING:", w)
    return {"nnunet": nn, "autounet_original": au, "autounet_used": autounet_config(new, lay.config), "changes": changes,
            "warnings": warnings}


# --------------------------------------------------------------------------- training runs

@dataclass
class TrainRun:
    variant: str
    round: int
    returncode: int
    wall_s: float
    cpu_s: float
    peak_pss_mib: float
    peak_rss_sum_mib: float
    peak_processes: int
    s_per_iter: float | None = None  # the throughput figure (warm-up dropped)
    s_per_iter_incl_warmup: float | None = None  # nnU-Net: mean of all iterations; autounet: epoch 0 / N
    samples_s: list[float] = field(default_factory=list)  # per-iteration (nnU-Net) or per-epoch (autounet) times
    compute_s_per_iter: float | None = None  # nnU-Net only: median time inside train_step
    nnunet_epoch_medians_s: list[float] = field(default_factory=list)  # nnU-Net only: median s/iteration per epoch
    aug_workers: int | None = None
    precision: str = ""
    patch_size: list[int] = field(default_factory=list)
    batch_size: int | None = None
    log: str = ""
    error: str = ""


def run_nnunet(args: argparse.Namespace, lay: Layout, rnd: int, env: dict[str, str]) -> TrainRun:
    fresh(lay.nn_results)
    env = dict(nnunet_env(env, lay), nnUNet_extTrainer=str(args.nnunet_trainers), ANCHOR_EPOCHS=str(args.nnunet_epochs),
               ANCHOR_TRAIN_ITERS=str(args.iterations), ANCHOR_VAL_ITERS="1", ANCHOR_SKIP_FINAL_VAL="1",
               nnUNet_n_proc_DA=str(args.processes), nnUNet_def_n_proc=str(args.processes))
    cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_train"), str(lay.dataset_id), lay.config, "0", "-tr",
           NNUNET_TRAINER, "-device", "cpu"]
    log = lay.logs / f"nnunet_round{rnd}.log"
    rc, wall, cpu, s = run_measured(cmd, env, log, args.interval)
    r = TrainRun("nnunet", rnd, rc, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                 aug_workers=args.processes, precision="float32", log=str(log))
    timings = lay.nn_results / lay.name / f"{NNUNET_TRAINER}__nnUNetPlans__{lay.config}" / "fold_0" / "anchor_timings.json"
    try:
        t = json.loads(timings.read_text())
        w = [float(v) for v in t["raw"]["iter_wall_s"]]
        c = [float(v) for v in t["raw"]["step_compute_s"]]
        ep = [int(v) for v in t["raw"]["epoch"]]
        if args.nnunet_epochs > 1:  # like autounet: drop epoch 0
            keep = [i for i, e in enumerate(ep) if e >= 1]
            first = [i for i, e in enumerate(ep) if e == 0]
        else:  # one epoch: drop its first iterations
            keep = list(range(min(NNUNET_WARMUP_ITERS, len(w) - 1), len(w)))
            first = list(range(len(w)))
        r.samples_s = w
        r.s_per_iter = float(np.median([w[i] for i in keep]))
        r.s_per_iter_incl_warmup = float(np.mean([w[i] for i in first]))
        r.compute_s_per_iter = float(np.median([c[i] for i in keep]))
        r.nnunet_epoch_medians_s = [float(np.median([w[i] for i, e in enumerate(ep) if e == k]))
                                    for k in sorted(set(ep))]
        r.patch_size, r.batch_size = t["patch_size"], t["batch_size"]
    except (OSError, ValueError, KeyError) as e:
        r.error = f"no timings in {timings}: {type(e).__name__}: {e}"
    return r


def _autounet_log_facts(path: Path) -> tuple[int | None, str, list[int], int | None]:
    """(augmentation workers, precision, patch, batch) from autounet's training_log.txt."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None, "", [], None
    workers = re.search(r"(\d+) augmentation worker\(s\)", text)
    prec = re.search(r"device \S+?, (mixed precision \([^)]*\)|float32)", text)
    patch = re.search(r"training \S+ fold \S+: [^\n]*?patch \(([\d, ]+)\), batch (\d+)", text)  # as trained
    return (int(workers.group(1)) if workers else None, prec.group(1) if prec else "",
            [int(v) for v in patch.group(1).split(",") if v.strip()] if patch else [],
            int(patch.group(2)) if patch else None)


def run_autounet(args: argparse.Namespace, lay: Layout, rnd: int, env: dict[str, str], variant: str) -> TrainRun:
    fold = lay.au_results / lay.config / "fold_0"
    remove(fold)
    cmd = [sys.executable, "-m", "autounet.cli", "train", str(lay.dataset_id), lay.config, "0",
           "--root", str(lay.au_root), "--device", "cpu", "--epochs", str(args.autounet_epochs),
           "--iterations-per-epoch", str(args.iterations),
           "--val-iterations-per-epoch", "1", "--no-validation", *VARIANTS[variant][1]]
    if args.autounet_workers is not None:
        cmd += ["--num-workers", str(args.autounet_workers)]
    log = lay.logs / f"{variant}_round{rnd}.log"
    rc, wall, cpu, s = run_measured(cmd, env, log, args.interval)
    workers, prec, patch, batch = _autounet_log_facts(fold / "training_log.txt")
    r = TrainRun(variant, rnd, rc, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                 aug_workers=workers, precision=prec, patch_size=patch, batch_size=batch, log=str(log))
    final = fold / "checkpoint_final.pt"
    try:
        import torch  # autounet's environment has it; imported here so the module loads without it

        ep = [float(v) for v in torch.load(final, map_location="cpu", weights_only=True)["log"]["epoch_seconds"]]
        r.samples_s = ep
        tail = ep[1:] if len(ep) > 1 else ep
        r.s_per_iter = float(np.median(tail)) / args.iterations
        r.s_per_iter_incl_warmup = ep[0] / args.iterations
    except Exception as e:  # noqa: BLE001 -- report whatever went wrong, keep benchmarking
        r.error = f"no epoch times from {final}: {type(e).__name__}: {e}"
    return r


# --------------------------------------------------------------------------- report

def _med(runs: list[TrainRun], variant: str, key: str) -> float | None:
    vals = [getattr(r, key) for r in runs if r.variant == variant and r.returncode == 0 and getattr(r, key) is not None]
    return float(np.median(vals)) if vals else None


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def report(runs: list[TrainRun], variants: list[str], iterations: int) -> dict:
    hdr = (f"{'round':>5}  {'run':<23} {'s/iter':>7} {'it/s':>6} {'s/it warm':>9} {'wall s':>7} {'cpu s':>7} "
           f"{'peak PSS MiB':>12} {'RSS-sum MiB':>11} {'procs':>5} {'DA workers':>10}  precision")
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        flag = "" if r.returncode == 0 and not r.error else f"  FAILED rc={r.returncode} {r.error} (see {r.log})"
        ips = 1 / r.s_per_iter if r.s_per_iter else None
        print(f"{r.round:>5}  {VARIANT_LABEL[r.variant]:<23} {_f(r.s_per_iter, '7.2f')} {_f(ips, '6.3f')} "
              f"{_f(r.s_per_iter_incl_warmup, '9.2f')} {r.wall_s:>7.1f} {r.cpu_s:>7.1f} {r.peak_pss_mib:>12.0f} "
              f"{r.peak_rss_sum_mib:>11.0f} {r.peak_processes:>5} {_f(r.aug_workers, '>10')}  {r.precision}{flag}")
    print("per epoch, s/iteration (nnU-Net: median of the epoch's iterations; autounet: epoch time / N):")
    for r in runs:
        per = r.nnunet_epoch_medians_s if r.variant == "nnunet" else [v / iterations for v in r.samples_s]
        print(f"  round {r.round} {VARIANT_LABEL[r.variant]:<23} " + " ".join(f"{v:.2f}" for v in per))
    print("  s/iter: nnU-Net median of iterations 4..N (with --nnunet-epochs > 1: of the iterations of epochs 1..);"
          " autounet median over epochs 1.. of (epoch time / N)")
    print("  s/it warm: warm-up included (nnU-Net mean of the iterations of epoch 0; autounet epoch 0 / N)")
    keys = ("s_per_iter", "s_per_iter_incl_warmup", "wall_s", "cpu_s", "peak_pss_mib", "peak_rss_sum_mib",
            "compute_s_per_iter")
    medians = {v: {k: _med(runs, v, k) for k in keys} for v in variants}
    print("\nmedians")
    for v in variants:
        m = medians[v]
        ips = 1 / m["s_per_iter"] if m["s_per_iter"] else None
        print(f"  {VARIANT_LABEL[v]:<23} {_f(m['s_per_iter'], '.2f')} s/iteration ({_f(ips, '.3f')} it/s)   "
              f"warm-up incl. {_f(m['s_per_iter_incl_warmup'], '.2f')} s/it   wall {_f(m['wall_s'], '.1f')} s   "
              f"peak PSS {_f(m['peak_pss_mib'], '.0f')} MiB   RSS-sum {_f(m['peak_rss_sum_mib'], '.0f')} MiB")
    ratios: dict[str, dict[str, float | None]] = {}
    n = medians.get("nnunet")
    if n and n["s_per_iter"]:
        print("\nratios against nnU-Net (throughput > 1: autounet faster; memory < 1: autounet smaller)")
        for v in variants:
            if v == "nnunet":
                continue
            a = medians[v]
            rr = {
                "throughput_autounet_over_nnunet": n["s_per_iter"] / a["s_per_iter"] if a["s_per_iter"] else None,
                "throughput_incl_warmup_autounet_over_nnunet":
                    n["s_per_iter_incl_warmup"] / a["s_per_iter_incl_warmup"]
                    if a["s_per_iter_incl_warmup"] and n["s_per_iter_incl_warmup"] else None,
                "peak_pss_autounet_over_nnunet": a["peak_pss_mib"] / n["peak_pss_mib"]
                    if a["peak_pss_mib"] and n["peak_pss_mib"] else None,
                "peak_rss_sum_autounet_over_nnunet": a["peak_rss_sum_mib"] / n["peak_rss_sum_mib"]
                    if a["peak_rss_sum_mib"] and n["peak_rss_sum_mib"] else None,
                "wall_autounet_over_nnunet": a["wall_s"] / n["wall_s"] if a["wall_s"] and n["wall_s"] else None,
            }
            ratios[v] = rr
            print(f"  {VARIANT_LABEL[v]:<23} throughput {_f(rr['throughput_autounet_over_nnunet'], '.2f')}x "
                  f"(warm-up incl. {_f(rr['throughput_incl_warmup_autounet_over_nnunet'], '.2f')}x)   "
                  f"peak PSS {_f(rr['peak_pss_autounet_over_nnunet'], '.2f')}   "
                  f"(RSS-sum {_f(rr['peak_rss_sum_autounet_over_nnunet'], '.2f')})")
    return {"medians": medians, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder (default ./bench_out)")
    ap.add_argument("--nnunet-venv", type=Path, default=None,
                    help="virtualenv holding nnunetv2; omit to time autounet only (with its own plan)")
    ap.add_argument("--nnunet-trainers", type=Path, default=DEFAULT_TRAINERS,
                    help=f"folder holding {NNUNET_TRAINER}.py (default {DEFAULT_TRAINERS})")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each round runs every variant once (default 2)")
    ap.add_argument("--iterations", type=int, default=20, help="training iterations per epoch, N (default 20)")
    ap.add_argument("--nnunet-epochs", type=int, default=1,
                    help="nnU-Net epochs of N iterations (default 1: iterations 4..N are timed; more: epoch 0 is "
                         "dropped, as for autounet)")
    ap.add_argument("--autounet-epochs", type=int, default=3,
                    help="autounet epochs of N iterations; epoch 0 is dropped as warm-up (default 3)")
    ap.add_argument("--autounet-workers", type=int, default=None,
                    help="pass --num-workers to autounet (default: autounet's own default, cores // 2 on CPU)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="what to run in each round, in this order (default: all three)")
    ap.add_argument("-p", "--processes", type=int, default=2,
                    help="preprocessing processes of both tools and nnU-Net's DA workers (nnUNet_n_proc_DA; default 2)")
    ap.add_argument("--cases", type=int, default=20, help="training cases of the dataset (default 20)")
    ap.add_argument("--repreprocess", action="store_true", help="plan and preprocess again even if cached")
    ap.add_argument("--interval", type=float, default=0.05, help="memory sampling interval in seconds (default 0.05)")
    args = ap.parse_args(argv)
    if not have_smaps_rollup():
        ap.error("needs Linux >= 4.14 (/proc/<pid>/smaps_rollup)")
    if min(args.iterations, args.autounet_epochs, args.nnunet_epochs, args.repeats) < 1:
        ap.error("--iterations, --autounet-epochs, --nnunet-epochs and --repeats must be >= 1")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = list(args.variants)
    if args.nnunet_venv is not None:
        args.nnunet_venv = args.nnunet_venv.resolve()
        args.nnunet_trainers = args.nnunet_trainers.resolve()
        for exe in ("nnUNetv2_plan_and_preprocess", "nnUNetv2_train"):
            if not (args.nnunet_venv / "bin" / exe).is_file():
                ap.error(f"{args.nnunet_venv}/bin/{exe} not found")
        if not (args.nnunet_trainers / f"{NNUNET_TRAINER}.py").is_file():
            ap.error(f"{args.nnunet_trainers}/{NNUNET_TRAINER}.py not found (--nnunet-trainers)")
    else:
        variants = [v for v in variants if v != "nnunet"]
    lay = Layout(args.out)

    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    spec = ensure_dataset(args, lay, env)
    prep = ensure_preprocessed(args, lay, env, spec)
    if args.nnunet_venv is not None:
        plans = match_plans(lay)
    else:  # autounet alone: its own plan (undo an earlier run's nnU-Net patch/network)
        if lay.au_plans_original.is_file():
            lay.au_plans.write_text(lay.au_plans_original.read_text())
        plans = {"autounet_used": autounet_config(json.loads(lay.au_plans.read_text())), "changes": [], "warnings": []}
        print(f"\nautounet's own plan, {CONFIG}: patch {plans['autounet_used']['patch_size']}, "
              f"batch {plans['autounet_used']['batch_size']}")

    print(f"\nbenchmark: {args.repeats} round(s) x {variants}, {args.iterations} iterations "
          f"(autounet: {args.autounet_epochs} epochs of them), {os.cpu_count()} cores; logs in {lay.logs}")
    runs: list[TrainRun] = []
    t_start = time.perf_counter()
    for rnd in range(1, args.repeats + 1):
        for v in variants:
            os.sync()
            r = run_nnunet(args, lay, rnd, env) if v == "nnunet" else run_autounet(args, lay, rnd, env, v)
            runs.append(r)
            ok = r.returncode == 0 and not r.error
            print(f"  round {rnd} {VARIANT_LABEL[v]:<23} {_f(r.s_per_iter, '6.2f')} s/iter  wall {r.wall_s:6.1f} s  "
                  f"peak PSS {r.peak_pss_mib:6.0f} MiB  {'ok' if ok else f'FAILED rc={r.returncode} {r.error}'}",
                  flush=True)
            if not ok:
                print(log_tail(Path(r.log)), file=sys.stderr)
    summary = report(runs, variants, args.iterations)

    notes = []
    workers = {v: sorted({r.aug_workers for r in runs if r.variant == v and r.aug_workers is not None}) for v in variants}
    notes.append("augmentation workers: " + ", ".join(f"{VARIANT_LABEL[v]} {workers[v] or '?'}" for v in variants)
                 + (" (nnU-Net also runs 1 validation DA worker: max(1, n_proc_DA // 2))" if "nnunet" in variants else ""))
    precisions = {v: sorted({r.precision for r in runs if r.variant == v and r.precision}) for v in variants}
    notes.append("precision: " + ", ".join(f"{VARIANT_LABEL[v]} {precisions[v] or '?'}" for v in variants))
    shapes = {(v, tuple(r.patch_size), r.batch_size) for r in runs if r.returncode == 0 for v in [r.variant]}
    notes.append("patch/batch actually trained: " + "; ".join(f"{VARIANT_LABEL[v]} {list(p)} x {b}"
                                                             for v, p, b in sorted(shapes, key=str)))
    if any(v != "nnunet" for v in variants):
        notes.append("autounet's epoch time covers: creating the epoch's DA workers, N training iterations, one "
                     "validation iteration (the checkpoint and plot are written after it); nnU-Net's per-iteration "
                     "times exclude per-epoch work")
    for w in plans.get("warnings", []):
        notes.append("WARNING: " + w)
    print()
    for n_ in notes:
        print("note:", n_)

    out = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "dataset": {"name": DATASET_NAME, "path": str(lay.raw), **spec},
        "configuration": CONFIG,
        "iterations": args.iterations,
        "autounet_epochs": args.autounet_epochs,
        "nnunet_epochs": args.nnunet_epochs,
        "nnunet_warmup_iterations_dropped": NNUNET_WARMUP_ITERS,
        "processes": args.processes,
        "repeats": args.repeats,
        "variants": variants,
        "sampling_interval_s": args.interval,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "preprocessing": prep,
        "plans": plans,
        "runs": [asdict(r) for r in runs],
        **summary,
        "notes": notes,
        "total_s": time.perf_counter() - t_start,
    }
    path = args.out / "bench_training.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten {path}")
    return 0 if all(r.returncode == 0 and not r.error for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
