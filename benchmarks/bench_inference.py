#!/usr/bin/env python3
"""Benchmark prediction time and peak memory: ``autounet predict`` against ``nnUNetv2_predict`` on CPU.

Both tools predict the same 8 images (``--cases``; the first ones of ``bench_training.py``'s
dataset ``Dataset970_TrainBench``, their ``_0000`` files copied to ``OUT/infer_inputs/``) with the
3d_fullres fold-0 model each of them trained in ``bench_training.py`` (same patch size, network and
data; the models are trained for a few iterations only, so only speed and memory are compared
here, not the segmentations):

1. Missing models are trained first, with ``bench_training.py``'s own functions (dataset,
   preprocessing, nnU-Net's plan copied into autounet's, ``--train-iterations`` iterations).
2. For ``--repeats`` rounds, alternating, every run into an empty output folder:
   (a) nnU-Net: ``nnUNetv2_predict -i IN -o OUT -d 970 -c 3d_fullres -f 0 -tr nnUNetTrainer_anchorTiny
       -device cpu -npp 1 -nps 1`` (test-time mirroring on, its default);
   (b) autounet default: ``autounet predict -i IN -o OUT -d 970 -c 3d_fullres -f 0 --root OUT/autounet
       --device cpu`` (mirroring on; float16 autocast on CUDA; on a CPU float32 since commit c78377b --
       before it, bfloat16 autocast on CPUs with native bf16, which this benchmark measured 2x slower);
   (c) autounet ``--no-amp`` (float32 everywhere, the same arithmetic as nnU-Net; on a CPU now the same
       as (b)).
   Each variant runs on all cases and (unless ``--no-single``) on the first case alone; the
   difference gives a start-up-free time per case: (wall(N) - wall(1)) / (N - 1), medians.
   Peak memory: the maximum of the summed PSS of the process and all its descendants, sampled
   every 250 ms (``--interval``; ``_common.TreeMemorySampler``; a sample of a 1 GB tree costs about
   15 ms of CPU, so 50 ms sampling would slow the measured tool, the bigger one more).
3. Optional accuracy check of the lower-precision default (``--accuracy-model``): a better-trained
   autounet fold is copied into ``OUT/acc/`` (with its workspace's ``preprocessed/`` and a link to
   its ``raw/``), predicts the dataset's ``imagesTs`` with and without ``--no-amp`` on
   ``--accuracy-device`` (default cpu; the check only compares two arithmetics where the default is
   not float32: CUDA, or a CPU with an autounet older than c78377b), and both are
   evaluated against ``labelsTs`` with ``autounet evaluate``; the per-class mean Dice of both, their
   difference and the voxel agreement of the two predictions are reported. The rule: a speed-up
   that changes the arithmetic must keep Dice within 0.005 of the float32 result.
4. Prints a table of every run, medians, ratios (time nnU-Net / autounet, peak PSS
   autounet / nnU-Net) and writes ``OUT/bench_inference.json``.

nnU-Net runs only as a subprocess from its own virtual environment (prediction needs
``nnUNet_extTrainer`` pointing at the tiny trainer's folder, set here); autounet never imports it.
Linux only (reads /proc).

    python benchmarks/bench_inference.py --nnunet-venv /root/nnunet-venv --repeats 2 \\
        --accuracy-model /tmp/ex3/results_fp32/Dataset910_Iso/3d_fullres/fold_0 --accuracy-root /tmp/ex3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import bench_training as bt
from _common import fresh, have_smaps_rollup, link_dir, log_tail, remove, run_measured

DATASET_ID = bt.DATASET_ID
DATASET_NAME = bt.DATASET_NAME
CONFIG = bt.CONFIG
NNUNET_TRAINER = bt.NNUNET_TRAINER
VARIANTS = {  # name -> extra autounet predict arguments (None: nnU-Net)
    "nnunet": None,
    "autounet": [],
    "autounet_fp32": ["--no-amp"],
}
VARIANT_LABEL = {"nnunet": "nnU-Net (fp32)", "autounet": "autounet (default)", "autounet_fp32": "autounet --no-amp"}
DICE_TOLERANCE = 0.005


# --------------------------------------------------------------------------- helpers

def _seg_files(folder: Path) -> list[Path]:
    """Predicted label maps in ``folder`` (no .json/.npz/.pkl side files)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".nii.gz", ".nii", ".nrrd", ".mha",
                                                                                    ".png", ".tif", ".tiff")))


def _read_labels(path: Path) -> np.ndarray:
    import SimpleITK as sitk  # in autounet's environment

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def voxel_agreement(a: Path, b: Path) -> dict:
    """Fraction of voxels with the same label in two folders of label maps (matched by file name)."""
    fa, fb = {p.name: p for p in _seg_files(a)}, {p.name: p for p in _seg_files(b)}
    names = sorted(set(fa) & set(fb))
    same = total = 0
    per_case = {}
    for n in names:
        x, y = _read_labels(fa[n]), _read_labels(fb[n])
        if x.shape != y.shape:
            per_case[n] = f"shapes differ {x.shape} vs {y.shape}"
            continue
        s = int((x == y).sum())
        per_case[n] = s / x.size
        same += s
        total += x.size
    return {"cases": len(names), "only_in_one": sorted(set(fa) ^ set(fb)),
            "agreement": same / total if total else None, "differing_voxels": total - same, "voxels": total,
            "per_case": per_case}


def display(cmd: list[str]) -> str:
    """A command as one would type it: ``autounet ...`` / ``nnUNetv2_predict ...``."""
    if cmd[:3] == [sys.executable, "-m", "autounet.cli"]:
        return " ".join(["autounet", *cmd[3:]])
    return " ".join([Path(cmd[0]).name, *cmd[1:]])


def cpu_native_bf16() -> bool | None:
    """autounet's own rule for bfloat16 autocast on CPU (None if it cannot be asked)."""
    try:
        out = subprocess.run([sys.executable, "-c", "from autounet.hardware import cpu_has_native_bf16 as f; print(f())"],
                             capture_output=True, text=True, timeout=120)
        return {"True": True, "False": False}.get(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------- models + inputs

def nnunet_fold(lay: bt.Layout) -> Path:
    return lay.nn_results / DATASET_NAME / f"{NNUNET_TRAINER}__nnUNetPlans__{CONFIG}" / "fold_0"


def autounet_fold(lay: bt.Layout) -> Path:
    return lay.au_results / CONFIG / "fold_0"


def ensure_models(args: argparse.Namespace, lay: bt.Layout, env: dict[str, str]) -> dict:
    """Train whichever fold-0 model is missing, exactly as bench_training.py does (few iterations)."""
    nn_ckpt = nnunet_fold(lay) / "checkpoint_final.pth"
    au_ckpt = autounet_fold(lay) / "checkpoint_final.pt"
    need_nn = "nnunet" in args.variants and not nn_ckpt.is_file()
    need_au = any(v != "nnunet" for v in args.variants) and not au_ckpt.is_file()
    info = {"nnunet_checkpoint": str(nn_ckpt), "autounet_checkpoint": str(au_ckpt), "trained_here": []}
    if not (need_nn or need_au or args.retrain):
        print(f"models: reusing {nn_ckpt if 'nnunet' in args.variants else ''} {au_ckpt}")
        return info
    targs = argparse.Namespace(cases=args.train_cases, repreprocess=False, processes=args.processes,
                               interval=args.interval, nnunet_venv=args.nnunet_venv,
                               nnunet_trainers=args.nnunet_trainers, iterations=args.train_iterations,
                               autounet_epochs=1, autounet_workers=None)
    spec = bt.ensure_dataset(targs, lay, env)
    bt.ensure_preprocessed(targs, lay, env, spec)
    if args.nnunet_venv is not None:
        bt.match_plans(lay)  # the same patch/batch/network as nnU-Net (bench_training.py's setup)
    for v, needed in (("nnunet", need_nn or (args.retrain and "nnunet" in args.variants)),
                      ("autounet", need_au or args.retrain)):
        if not needed:
            continue
        print(f"models: training {v} fold 0 for {args.train_iterations} iterations (bench_training.py's commands)")
        r = bt.run_nnunet(targs, lay, 0, env) if v == "nnunet" else bt.run_autounet(targs, lay, 0, env, "autounet")
        if r.returncode != 0:
            sys.exit(f"training {v} failed (rc={r.returncode}):\n" + log_tail(Path(r.log)))
        info["trained_here"].append({"variant": v, "wall_s": r.wall_s, "log": r.log})
    return info


def ensure_inputs(args: argparse.Namespace, lay: bt.Layout) -> tuple[Path, Path | None, list[str]]:
    """OUT/infer_inputs (the first N cases' _0000 files) and OUT/infer_inputs_1 (the first case)."""
    src = lay.raw / "imagesTr"
    files = sorted(p for p in src.iterdir() if p.name.endswith(("_0000.nii.gz", "_0000.nii", "_0000.nrrd", "_0000.mha",
                                                                "_0000.png", "_0000.tif", "_0000.tiff")))
    if len(files) < args.cases:
        sys.exit(f"{src}: only {len(files)} _0000 images, --cases {args.cases}")
    chosen = files[: args.cases]
    others = [p for p in src.iterdir() if p.name.startswith(tuple(f.name.split("_0000")[0] + "_" for f in chosen))
              and p not in chosen]
    if others:  # more than one channel: the models would need every channel
        sys.exit(f"{src}: the dataset has more than one channel ({others[0].name}); not supported here")
    inp = fresh(args.out / "infer_inputs")
    for p in chosen:
        shutil.copy2(p, inp / p.name)
    one = None
    if not args.no_single:
        one = fresh(args.out / "infer_inputs_1")
        shutil.copy2(chosen[0], one / chosen[0].name)
    return inp, one, [p.name for p in chosen]


# --------------------------------------------------------------------------- runs

@dataclass
class PredictRun:
    variant: str
    round: int
    cases: int
    returncode: int
    wall_s: float
    cpu_s: float
    peak_pss_mib: float
    peak_rss_sum_mib: float
    peak_processes: int
    outputs: int
    s_per_case: float
    output_dir: str
    log: str
    load_avg_1min_before: float = 0.0
    error: str = ""


def predict_command(args: argparse.Namespace, lay: bt.Layout, variant: str, inp: Path, out: Path,
                    env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    if variant == "nnunet":
        cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_predict"), "-i", str(inp), "-o", str(out), "-d", str(DATASET_ID),
               "-c", CONFIG, "-f", "0", "-tr", NNUNET_TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1"]
        return cmd, dict(bt.nnunet_env(env, lay), nnUNet_extTrainer=str(args.nnunet_trainers))
    cmd = [sys.executable, "-m", "autounet.cli", "predict", "-i", str(inp), "-o", str(out), "-d", str(DATASET_ID),
           "-c", CONFIG, "-f", "0", "--root", str(lay.au_root), "--device", "cpu", *VARIANTS[variant]]
    return cmd, env


def run_predict(args: argparse.Namespace, lay: bt.Layout, variant: str, rnd: int, inp: Path, n: int,
                env: dict[str, str]) -> PredictRun:
    out = fresh(args.out / "infer_out" / f"{variant}_{n}case{'s' if n > 1 else ''}")
    cmd, run_env = predict_command(args, lay, variant, inp, out, env)
    log = args.out / "logs" / "inference" / f"{variant}_{n}cases_round{rnd}.log"
    os.sync()
    load = os.getloadavg()[0]
    rc, wall, cpu, s = run_measured(cmd, run_env, log, args.interval)
    outputs = len(_seg_files(out))
    r = PredictRun(variant, rnd, n, rc, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                   outputs, wall / n, str(out), str(log), load)
    if rc == 0 and outputs != n:
        r.error = f"{outputs} label maps written, expected {n}"
    return r


# --------------------------------------------------------------------------- accuracy check

def accuracy_check(args: argparse.Namespace, env: dict[str, str]) -> dict:
    fold_dir = args.accuracy_model.resolve()
    config_dir, ds_dir = fold_dir.parent, fold_dir.parent.parent
    fold, config, ds = fold_dir.name.removeprefix("fold_"), config_dir.name, ds_dir.name
    src_root = args.accuracy_root.resolve()
    images = (args.accuracy_images or src_root / "raw" / ds / "imagesTs").resolve()
    labels = (args.accuracy_labels or src_root / "raw" / ds / "labelsTs").resolve()
    ckpt = fold_dir / "checkpoint_final.pt"
    if args.accuracy_wait > 0 and not ckpt.is_file():
        print(f"accuracy: waiting up to {args.accuracy_wait:.0f} s for {ckpt}", flush=True)
        t_end = time.time() + args.accuracy_wait
        while not ckpt.is_file() and time.time() < t_end:
            time.sleep(30)
    if not ckpt.is_file():
        return {"error": f"{ckpt} not found"}
    for _ in range(30):  # still being written/copied? wait until its size is stable
        size = ckpt.stat().st_size
        time.sleep(2)
        if ckpt.stat().st_size == size:
            break
    ws = fresh(args.out / "acc")
    shutil.copytree(fold_dir, ws / "results" / ds / config / fold_dir.name)
    if (src_root / "preprocessed" / ds).is_dir():
        shutil.copytree(src_root / "preprocessed" / ds, ws / "preprocessed" / ds)
    link_dir(src_root / "raw" / ds, ws / "raw" / ds)
    print(f"\naccuracy check: {fold_dir} (copied to {ws}), {len(_seg_files(images))} images of {images}")
    res: dict = {"device": args.accuracy_device, "model": str(fold_dir), "workspace": str(ws), "dataset": ds, "configuration": config, "fold": fold,
                 "images": str(images), "labels": str(labels), "tolerance": DICE_TOLERANCE, "runs": {}}
    for name, extra in (("amp", []), ("fp32", ["--no-amp"])):
        pred = fresh(ws / f"pred_{name}")
        cmd = [sys.executable, "-m", "autounet.cli", "predict", "-i", str(images), "-o", str(pred), "-d", ds, "-c", config,
               "-f", fold, "--root", str(ws), "--device", args.accuracy_device, *extra]
        log = args.out / "logs" / "inference" / f"accuracy_predict_{name}.log"
        rc, wall, _, s = run_measured(cmd, env, log, args.interval)
        run = {"predict_command": display(cmd), "predict_rc": rc, "predict_wall_s": wall,
               "predict_peak_pss_mib": s.peak_pss_kib / 1024, "predictions": len(_seg_files(pred)), "log": str(log)}
        print(f"  predict {name:<4} rc={rc} {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB", flush=True)
        if rc != 0:
            run["error"] = log_tail(log)
            print(run["error"], file=sys.stderr)
            res["runs"][name] = run
            continue
        ecmd = [sys.executable, "-m", "autounet.cli", "evaluate", "-r", str(labels), "--prediction", str(pred)]
        elog = args.out / "logs" / "inference" / f"accuracy_evaluate_{name}.log"
        p = subprocess.run(ecmd, env=env, capture_output=True, text=True)
        elog.write_text(" ".join(ecmd) + "\n\n" + p.stdout + p.stderr)
        run.update({"evaluate_command": display(ecmd), "evaluate_rc": p.returncode})
        if p.returncode != 0:
            run["error"] = (p.stdout + p.stderr)[-3000:]
            print(run["error"], file=sys.stderr)
        else:
            summary = json.loads((pred / "summary.json").read_text())
            run["dice_per_class"] = {c: m.get("dice") for c, m in summary["mean"].items()}
            run["foreground_mean_dice"] = summary["foreground_mean"].get("dice")
            run["dice_per_case"] = {c["case_id"]: {k: v.get("dice") for k, v in c["metrics"].items()}
                                    for c in summary["cases"]}
        res["runs"][name] = run
    a, f = res["runs"].get("amp", {}), res["runs"].get("fp32", {})
    if "dice_per_class" in a and "dice_per_class" in f:
        diff = {c: a["dice_per_class"][c] - f["dice_per_class"][c] for c in f["dice_per_class"]}
        res["dice_difference_default_minus_fp32"] = diff
        res["foreground_mean_difference"] = a["foreground_mean_dice"] - f["foreground_mean_dice"]
        res["max_abs_class_difference"] = max(abs(v) for v in diff.values())
        res["within_tolerance"] = res["max_abs_class_difference"] <= DICE_TOLERANCE
        res["voxel_agreement"] = voxel_agreement(ws / "pred_amp", ws / "pred_fp32")
    return res


# --------------------------------------------------------------------------- report

def _med(runs: list[PredictRun], variant: str, n: int, key: str) -> float | None:
    vals = [getattr(r, key) for r in runs if r.variant == variant and r.cases == n and r.returncode == 0 and not r.error]
    return float(np.median(vals)) if vals else None


def _f(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def report(runs: list[PredictRun], variants: list[str], n: int, single: bool) -> dict:
    hdr = (f"{'round':>5}  {'run':<23} {'cases':>5} {'wall s':>7} {'s/case':>7} {'cpu s':>7} {'peak PSS MiB':>12} "
           f"{'RSS-sum MiB':>11} {'procs':>5} {'load':>5}")
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        flag = "" if r.returncode == 0 and not r.error else f"  FAILED rc={r.returncode} {r.error} (see {r.log})"
        print(f"{r.round:>5}  {VARIANT_LABEL[r.variant]:<23} {r.cases:>5} {r.wall_s:>7.1f} {r.s_per_case:>7.2f} "
              f"{r.cpu_s:>7.1f} {r.peak_pss_mib:>12.0f} {r.peak_rss_sum_mib:>11.0f} {r.peak_processes:>5} {r.load_avg_1min_before:>5.1f}{flag}")
    medians: dict[str, dict] = {}
    for v in variants:
        m = {"wall_s": _med(runs, v, n, "wall_s"), "cpu_s": _med(runs, v, n, "cpu_s"),
             "peak_pss_mib": _med(runs, v, n, "peak_pss_mib"), "peak_rss_sum_mib": _med(runs, v, n, "peak_rss_sum_mib")}
        m["s_per_case"] = m["wall_s"] / n if m["wall_s"] is not None else None
        m["cpu_s_per_case"] = m["cpu_s"] / n if m["cpu_s"] is not None else None
        if single:
            w1 = _med(runs, v, 1, "wall_s")
            m["wall_1case_s"] = w1
            m["peak_pss_1case_mib"] = _med(runs, v, 1, "peak_pss_mib")
            if w1 is not None and m["wall_s"] is not None and n > 1:
                steady = (m["wall_s"] - w1) / (n - 1)
                m["s_per_case_startup_free"] = steady
                m["startup_s_estimate"] = w1 - steady
            c1 = _med(runs, v, 1, "cpu_s")
            m["cpu_1case_s"] = c1
            if c1 is not None and m["cpu_s"] is not None and n > 1:
                m["cpu_s_per_case_startup_free"] = (m["cpu_s"] - c1) / (n - 1)
        medians[v] = m
    print(f"\nmedians ({n} cases; s/case = wall / {n}, start-up included"
          + (f"; start-up-free s/case = (wall({n}) - wall(1)) / {n - 1})" if single else ")"))
    for v in variants:
        m = medians[v]
        extra = (f"   start-up-free {_f(m.get('s_per_case_startup_free'), '.2f')} s/case, start-up "
                 f"~{_f(m.get('startup_s_estimate'), '.1f')} s" if single else "")
        print(f"  {VARIANT_LABEL[v]:<23} {_f(m['s_per_case'], '.2f')} s/case (wall {_f(m['wall_s'], '.1f')} s)"
              f"{extra}   cpu {_f(m['cpu_s_per_case'], '.2f')} s/case   peak PSS {_f(m['peak_pss_mib'], '.0f')} MiB")
    ratios: dict[str, dict] = {}
    nn = medians.get("nnunet")
    if nn and nn["wall_s"]:
        print("\nratios (time nnU-Net / autounet: > 1 means autounet faster; peak PSS autounet / nnU-Net: < 1 means "
              "autounet smaller)")
        for v in variants:
            if v == "nnunet":
                continue
            a = medians[v]
            rr = {"time_nnunet_over_autounet": nn["wall_s"] / a["wall_s"] if a["wall_s"] else None,
                  "time_startup_free_nnunet_over_autounet":
                      nn["s_per_case_startup_free"] / a["s_per_case_startup_free"]
                      if nn.get("s_per_case_startup_free") and a.get("s_per_case_startup_free") else None,
                  "cpu_time_nnunet_over_autounet": nn["cpu_s"] / a["cpu_s"] if a["cpu_s"] and nn["cpu_s"] else None,
                  "cpu_time_startup_free_nnunet_over_autounet":
                      nn["cpu_s_per_case_startup_free"] / a["cpu_s_per_case_startup_free"]
                      if nn.get("cpu_s_per_case_startup_free") and a.get("cpu_s_per_case_startup_free") else None,
                  "peak_pss_autounet_over_nnunet": a["peak_pss_mib"] / nn["peak_pss_mib"]
                      if a["peak_pss_mib"] and nn["peak_pss_mib"] else None}
            ratios[v] = rr
            print(f"  {VARIANT_LABEL[v]:<23} time {_f(rr['time_nnunet_over_autounet'], '.2f')}x"
                  + (f" (start-up-free {_f(rr['time_startup_free_nnunet_over_autounet'], '.2f')}x)" if single else "")
                  + f"   cpu time {_f(rr['cpu_time_nnunet_over_autounet'], '.2f')}x"
                  + f"   peak PSS {_f(rr['peak_pss_autounet_over_nnunet'], '.2f')}")
    if "autounet" in medians and "autounet_fp32" in medians:
        a, f = medians["autounet"], medians["autounet_fp32"]
        ratios["autounet_default_vs_no_amp"] = {
            "time_no_amp_over_default": f["wall_s"] / a["wall_s"] if a["wall_s"] and f["wall_s"] else None,
            "time_startup_free_no_amp_over_default": f["s_per_case_startup_free"] / a["s_per_case_startup_free"]
                if a.get("s_per_case_startup_free") and f.get("s_per_case_startup_free") else None}
    return {"medians": medians, "ratios": ratios}


def print_accuracy(acc: dict) -> None:
    print(f"\naccuracy check of the default precision (autounet predict vs --no-amp, device {acc.get('device')})")
    if "error" in acc:
        print("  skipped:", acc["error"])
        return
    print(f"  model {acc['model']}; {acc['images']} vs {acc['labels']}")
    a, f = acc["runs"].get("amp", {}), acc["runs"].get("fp32", {})
    for name, r in (("default", a), ("--no-amp (fp32)", f)):
        if "dice_per_class" in r:
            per = "  ".join(f"class {c} {d:.4f}" for c, d in r["dice_per_class"].items())
            print(f"  {name:<16} mean Dice {per}   foreground mean {r['foreground_mean_dice']:.4f}"
                  f"   ({r['predict_wall_s']:.1f} s)")
        else:
            print(f"  {name:<16} FAILED: {r.get('error', '?')[-500:]}")
    if "dice_difference_default_minus_fp32" in acc:
        d = acc["dice_difference_default_minus_fp32"]
        print("  difference default - fp32: " + "  ".join(f"class {c} {v:+.5f}" for c, v in d.items())
              + f"   foreground mean {acc['foreground_mean_difference']:+.5f}")
        va = acc["voxel_agreement"]
        print(f"  max |difference| {acc['max_abs_class_difference']:.5f} "
              f"{'<=' if acc['within_tolerance'] else '>'} {DICE_TOLERANCE}: "
              f"{'within' if acc['within_tolerance'] else 'OUTSIDE'} tolerance;  voxel agreement of the two predictions "
              f"{_f(va['agreement'], '.6f')} ({va['differing_voxels']} of {va['voxels']} voxels differ, "
              f"{va['cases']} cases)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder (default ./bench_out)")
    ap.add_argument("--nnunet-venv", type=Path, default=None,
                    help="virtualenv holding nnunetv2; omit to time autounet only")
    ap.add_argument("--nnunet-trainers", type=Path, default=bt.DEFAULT_TRAINERS,
                    help=f"folder holding {NNUNET_TRAINER}.py (default {bt.DEFAULT_TRAINERS})")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each runs every variant once (default 2)")
    ap.add_argument("--cases", type=int, default=8, help="images to predict (default 8)")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the 1-case runs (no start-up-free time per case)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="what to run in each round, in this order (default: all three)")
    ap.add_argument("--train-iterations", type=int, default=4,
                    help="iterations to train a missing model with (default 4)")
    ap.add_argument("--train-cases", type=int, default=20,
                    help="cases of the training dataset if it has to be written (bench_training.py's default 20)")
    ap.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    ap.add_argument("-p", "--processes", type=int, default=2,
                    help="processes for preprocessing/training a missing model (default 2); prediction uses 1")
    ap.add_argument("--accuracy-model", type=Path, default=None,
                    help="an autounet fold folder RESULTS/DATASET/CONFIG/fold_F for the amp-vs-fp32 Dice check, e.g. "
                         "/tmp/ex3/results_fp32/Dataset910_Iso/3d_fullres/fold_0 (default: no check)")
    ap.add_argument("--accuracy-root", type=Path, default=None,
                    help="the workspace root that model's dataset lives in (raw/DATASET, preprocessed/DATASET), e.g. "
                         "/tmp/ex3")
    ap.add_argument("--accuracy-images", type=Path, default=None, help="default ROOT/raw/DATASET/imagesTs")
    ap.add_argument("--accuracy-labels", type=Path, default=None, help="default ROOT/raw/DATASET/labelsTs")
    ap.add_argument("--accuracy-wait", type=float, default=0,
                    help="seconds to wait for the accuracy model's checkpoint_final.pt to appear (default 0)")
    ap.add_argument("--accuracy-device", default="cpu", choices=("cpu", "cuda", "mps", "auto"),
                    help="device of the accuracy check's predictions (default cpu)")
    ap.add_argument("--accuracy-only", action="store_true", help="skip the timing runs")
    ap.add_argument("--interval", type=float, default=0.25,
                    help="memory sampling interval in seconds (default 0.25: reading smaps_rollup of a 1 GB process "
                         "costs ~15 ms, so 50 ms sampling would take ~25%% of a core from the tool measured)")
    args = ap.parse_args(argv)
    if not have_smaps_rollup():
        ap.error("needs Linux >= 4.14 (/proc/<pid>/smaps_rollup)")
    if args.repeats < 1 or args.cases < 1:
        ap.error("--repeats and --cases must be >= 1")
    if args.accuracy_model is not None and args.accuracy_root is None:
        ap.error("--accuracy-model needs --accuracy-root")
    if args.cases == 1:
        args.no_single = True
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.variants = list(args.variants)
    if args.nnunet_venv is not None:
        args.nnunet_venv = args.nnunet_venv.resolve()
        args.nnunet_trainers = args.nnunet_trainers.resolve()
        for exe in ("nnUNetv2_predict", "nnUNetv2_train", "nnUNetv2_plan_and_preprocess"):
            if not (args.nnunet_venv / "bin" / exe).is_file():
                ap.error(f"{args.nnunet_venv}/bin/{exe} not found")
        if not (args.nnunet_trainers / f"{NNUNET_TRAINER}.py").is_file():
            ap.error(f"{args.nnunet_trainers}/{NNUNET_TRAINER}.py not found (--nnunet-trainers)")
    else:
        args.variants = [v for v in args.variants if v != "nnunet"]
    lay = bt.Layout(args.out)
    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    t_start = time.perf_counter()

    runs: list[PredictRun] = []
    summary: dict = {}
    models: dict = {}
    input_names: list[str] = []
    agreement = None
    bf16 = cpu_native_bf16()
    if not args.accuracy_only:
        models = ensure_models(args, lay, env)
        inp, one, input_names = ensure_inputs(args, lay)
        sizes = [args.cases] + ([] if args.no_single else [1])
        print(f"\nbenchmark: {args.repeats} round(s) x {args.variants} x {sizes} case(s), {os.cpu_count()} cores; "
              f"CPU with native bf16: {bf16}; "
              f"logs in {args.out / 'logs' / 'inference'}")
        for rnd in range(1, args.repeats + 1):
            for n, folder in ((args.cases, inp), (1, one)):
                if folder is None:
                    continue
                for v in args.variants:
                    r = run_predict(args, lay, v, rnd, folder, n, env)
                    runs.append(r)
                    ok = r.returncode == 0 and not r.error
                    print(f"  round {rnd} {VARIANT_LABEL[v]:<23} {n} case(s)  wall {r.wall_s:6.1f} s  "
                          f"{r.s_per_case:6.2f} s/case  peak PSS {r.peak_pss_mib:6.0f} MiB  "
                          f"{'ok' if ok else f'FAILED rc={r.returncode} {r.error}'}", flush=True)
                    if not ok:
                        print(log_tail(Path(r.log)), file=sys.stderr)
        summary = report(runs, args.variants, args.cases, not args.no_single)
        if "autounet" in args.variants and "autounet_fp32" in args.variants:
            # the same model predicting the same images by default and with --no-amp (last round's outputs)
            agreement = voxel_agreement(args.out / "infer_out" / f"autounet_{args.cases}cases",
                                        args.out / "infer_out" / f"autounet_fp32_{args.cases}cases")
            print(f"\nbench model, autounet default vs --no-amp: voxel agreement {_f(agreement['agreement'], '.6f')} "
                  f"({agreement['differing_voxels']} of {agreement['voxels']} voxels differ)")

    acc = None
    if args.accuracy_model is not None:
        acc = accuracy_check(args, env)
        print_accuracy(acc)

    out = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "dataset": {"name": DATASET_NAME, "path": str(lay.raw), "inputs": input_names,
                    "inputs_folder": str(args.out / "infer_inputs")},
        "configuration": CONFIG,
        "cases": args.cases,
        "repeats": args.repeats,
        "variants": args.variants,
        "commands": {v: display(predict_command(args, lay, v, Path("IN"), Path("OUT"), env)[0])
                     for v in args.variants},
        "autounet_cpu_native_bf16": bf16,
        "sampling_interval_s": args.interval,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "models": models,
        "runs": [asdict(r) for r in runs],
        **summary,
        "bench_model_default_vs_no_amp_agreement": agreement,
        "accuracy_check": acc,
        "notes": [
            "s_per_case = total wall / cases, start-up (imports, model loading) included for both tools",
            "s_per_case_startup_free = (median wall(N cases) - median wall(1 case)) / (N - 1)",
            f"peak PSS: max over {args.interval} s samples of the summed PSS of the tool's process tree",
            "the bench models are trained for a few iterations only: their segmentations are not compared",
            "autounet predicts in float32 on a CPU since commit c78377b (default and --no-amp are the same "
            "arithmetic there; identical outputs expected); before it the default was bfloat16 autocast on CPUs "
            "with native bf16",
        ],
        "total_s": time.perf_counter() - t_start,
    }
    path = args.out / "bench_inference.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwritten {path}")
    ok = all(r.returncode == 0 and not r.error for r in runs)
    if acc is not None and ("error" in acc or "within_tolerance" not in acc):
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
