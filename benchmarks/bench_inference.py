#!/usr/bin/env python3
"""Benchmark prediction time and peak memory on CPU: ``autounet predict`` variants against ``nnUNetv2_predict``.

For each dataset (``--datasets``, default both), every variant predicts the same 8 images (``--cases``; the
first training cases' ``_0000`` files, copied to ``OUT/DS/infer_inputs/``) with a fold-0 model of the same
patch size and network for both tools. The models are trained for a few iterations only, so only speed,
memory and the agreement of autounet's variants are compared here, not the segmentations' quality:

- ``example3d``: ``bench_training.py``'s ``Dataset970_TrainBench`` (20 anisotropic 3D cases,
  ``make_example_dataset --dims 3 --anisotropic``), configuration ``3d_fullres``, in ``OUT/example3d/``;
- ``isbi``: a copy of ``../shared/datasets/Dataset901_ISBI2012EM`` (30 EM images of 512x512, 2D PNG; the
  shared folder is never modified; ``bench_budget.py``'s copy), configuration ``2d``, in ``OUT/isbi/``.

Each dataset's subfolder has ``bench_training.py``'s layout (``raw/``, ``nnunet_raw/``, ``nnunet/``,
``autounet/``, ``logs/``), so its models are cached there:

1. Missing models are trained first, with ``bench_training.py``'s own functions (dataset,
   plan + preprocess by both tools, nnU-Net's plan -- patch, batch, network -- copied into autounet's,
   fold 0 trained for ``--train-iterations`` iterations).
2. For ``--repeats`` rounds (default 3), the variants in turn (``--variants``), every run into an empty
   output folder, first on all cases, then (unless ``--no-single``) on the first case alone:
   - ``nnunet``: ``nnUNetv2_predict -i IN -o OUT -d ID -c CONFIG -f 0 -tr nnUNetTrainer_anchorTiny
     -device cpu -npp 1 -nps 1`` (test-time mirroring on, float32);
   - ``autounet``: ``autounet predict -i IN -o OUT -d ID -c CONFIG -f 0 --root OUT/DS/autounet --device cpu``
     (the defaults: mirroring on, ``--backend auto``, i.e. torch for a checkpoint: since commit dccf562 bfloat16
     channels-last on CPUs with native bf16, else float32; float32 on every CPU from c78377b to dccf562, and
     bfloat16 autocast before c78377b, which this benchmark measured 2x slower than float32);
   - ``autounet_fp32``: the same with ``--no-amp`` (float32 PyTorch, nnU-Net's arithmetic; the reference
     of the voxel agreement);
   - ``autounet_ort``, ``autounet_openvino``, ``autounet_torch``: the same with ``--backend onnxruntime``
     (float32), ``--backend openvino`` or ``--backend torch`` (these two in bfloat16 on CPUs with native bf16,
     unless ``--no-amp``; ``torch`` is what ``auto`` picks for a checkpoint).
   A variant whose options this autounet's ``predict --help`` lacks is skipped with a note (the table
   ``VARIANTS`` is all there is to change for a new setting). The start-up-free time per case is
   (median wall(N) - median wall(1)) / (N - 1). Peak memory: the maximum of the summed PSS of the process
   and all its descendants, sampled every 250 ms (``--interval``; ``_common.TreeMemorySampler``; a sample of
   a 1 GB tree costs about 15 ms of CPU, so 50 ms sampling would slow the measured tool, the bigger one more).
3. Per dataset: a table of every run, the medians, and a summary per variant: start-up-free s/case, wall
   s/case, peak PSS, the ratios against nnU-Net (time nnU-Net / variant, peak PSS variant / nnU-Net) and
   the voxel agreement of each autounet variant's label maps with ``autounet_fp32``'s (last round, all cases).
4. Optional accuracy check (``--accuracy NAME=FOLD_DIR[:ROOT]``, repeatable): a better-trained autounet fold
   ``RESULTS/DATASET/CONFIG/fold_F`` is copied into ``OUT/acc/NAME/`` (without its ``validation/``; with the
   JSON files of its workspace's ``preprocessed/DATASET`` and a link to ``ROOT/raw/DATASET``; ROOT defaults
   to the fold's own workspace root). It predicts ``ROOT/raw/DATASET/imagesTs`` when that folder and
   ``labelsTs`` exist, else the fold's validation cases (from ``preprocessed/DATASET/splits.json`` of the
   fold's workspace or ROOT, else the case ids in the fold's ``validation/``; images from ``imagesTr``, labels
   from ``labelsTr``, copied to ``OUT/acc/NAME/``), once per ``--accuracy-variants`` (default autounet,
   autounet_fp32, autounet_ort, autounet_openvino) on ``--accuracy-device`` (default cpu); each is scored with
   ``autounet evaluate``. Reported: the per-class and foreground mean Dice of each, the difference to
   ``autounet_fp32`` and the voxel agreement with it. The rule: a speed-up that changes the arithmetic must
   keep every class's Dice within 0.005 of the float32 result.
5. Prints the tables, markdown tables ready for ``benchmarks/README.md``, and writes
   ``OUT/bench_inference.json`` (all runs, per dataset; rewritten after each dataset).

nnU-Net runs only as a subprocess from its own virtual environment (prediction needs
``nnUNet_extTrainer`` pointing at the tiny trainer's folder, set here); autounet never imports it.
Linux only (reads /proc).

    python benchmarks/bench_inference.py --nnunet-venv /root/nnunet-venv \\
        --accuracy example3d=/tmp/acc3d/results/Dataset960_Acc3D/3d_fullres/fold_0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import bench_budget as bb
import bench_training as bt
from _common import fresh, have_smaps_rollup, link_dir, log_tail, run_measured

NNUNET_TRAINER = bt.NNUNET_TRAINER
DATASETS = {  # --datasets key -> id, name, configuration; "copy_from": copied, else bench_training's dataset
    "example3d": {"id": bt.DATASET_ID, "name": bt.DATASET_NAME, "configuration": bt.CONFIG},
    "isbi": bb.DATASETS["isbi"],
}
VARIANTS = {  # name -> extra autounet predict arguments (None: nnU-Net)
    "nnunet": None,
    "autounet": [],
    "autounet_fp32": ["--no-amp"],
    "autounet_ort": ["--backend", "onnxruntime"],
    "autounet_openvino": ["--backend", "openvino"],
    "autounet_torch": ["--backend", "torch"],
    "autounet_int8": ["--int8"],  # int8 networks kept in OUT/DS/int8_cache: the first run calibrates, later ones read
    "autounet_int8_cold": ["--int8"],  # an empty cache each run: every run calibrates (the first run's start-up)
}
VARIANT_LABEL = {"nnunet": "nnU-Net (fp32)", "autounet": "autounet (default)", "autounet_fp32": "autounet --no-amp",
                 "autounet_ort": "autounet onnxruntime", "autounet_openvino": "autounet openvino",
                 "autounet_torch": "autounet torch", "autounet_int8": "autounet int8 (onnxruntime)",
                 "autounet_int8_cold": "autounet int8, calibrating"}
REFERENCE = "autounet_fp32"  # the voxel agreement and the Dice differences are against this variant's masks
ACCURACY_VARIANTS = ["autounet", "autounet_fp32", "autounet_ort", "autounet_openvino", "autounet_int8"]
DICE_TOLERANCE = 0.005
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff")


# --------------------------------------------------------------------------- helpers

def _seg_files(folder: Path) -> list[Path]:
    """Predicted label maps in ``folder`` (no .json/.npz/.pkl side files)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(IMAGE_ENDINGS))


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
    """autounet's own rule for bfloat16 on CPU (None if it cannot be asked)."""
    try:
        out = subprocess.run([sys.executable, "-c", "from autounet.hardware import cpu_has_native_bf16 as f; print(f())"],
                             capture_output=True, text=True, timeout=120)
        return {"True": True, "False": False}.get(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def unsupported_variants(variants: list[str], env: dict[str, str]) -> dict[str, str]:
    """variant -> why this autounet cannot run it: an option (or option value) of ``VARIANTS[variant]`` that
    ``autounet predict --help`` does not list. Nothing is skipped when the help cannot be read."""
    wanted = {v: VARIANTS[v] for v in variants if VARIANTS[v]}
    if not wanted:
        return {}
    try:
        p = subprocess.run([sys.executable, "-m", "autounet.cli", "predict", "--help"], env=env, capture_output=True,
                           text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return {}
    if p.returncode != 0:
        return {}
    text = p.stdout
    out = {}
    for v, extra in wanted.items():
        problems = []
        for i, a in enumerate(extra):
            if not a.startswith("--"):
                continue
            if not re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", text):
                problems.append(f"no {a}")
                continue
            choices = re.search(rf"{re.escape(a)} \{{([^}}]*)\}}", text)
            value = extra[i + 1] if i + 1 < len(extra) and not extra[i + 1].startswith("-") else None
            if choices and value is not None and value not in choices.group(1).split(","):
                problems.append(f"{a} {value} not among {{{choices.group(1)}}}")
        if problems:
            out[v] = "this autounet's predict has " + "; ".join(problems)
    return out


def _f(v, fmt: str, none: str = "n/a") -> str:
    return none if v is None else format(v, fmt)


# --------------------------------------------------------------------------- models + inputs

def layout(out: Path, key: str) -> bt.Layout:
    """bench_training's layout for one dataset, in ``OUT/KEY/``."""
    ds = DATASETS[key]
    return bt.Layout(out / key, ds["id"], ds["name"], ds["configuration"])


def nnunet_fold(lay: bt.Layout) -> Path:
    return lay.nn_results / lay.name / f"{NNUNET_TRAINER}__nnUNetPlans__{lay.config}" / "fold_0"


def autounet_fold(lay: bt.Layout) -> Path:
    return lay.au_results / lay.config / "fold_0"


def ensure_models(args: argparse.Namespace, key: str, lay: bt.Layout, env: dict[str, str]) -> dict:
    """Train whichever fold-0 model is missing, exactly as bench_training.py does (few iterations)."""
    nn_ckpt = nnunet_fold(lay) / "checkpoint_final.pth"
    au_ckpt = autounet_fold(lay) / "checkpoint_final.pt"
    want_nn = "nnunet" in args.variants
    want_au = any(v != "nnunet" for v in args.variants)
    info: dict = {"nnunet_checkpoint": str(nn_ckpt) if want_nn else None, "autounet_checkpoint": str(au_ckpt),
                  "trained_here": []}
    if not args.retrain and (nn_ckpt.is_file() or not want_nn) and (au_ckpt.is_file() or not want_au):
        print(f"models: reusing {nn_ckpt if want_nn else ''} {au_ckpt if want_au else ''}")
        return info
    targs = argparse.Namespace(cases=args.train_cases, repreprocess=False, processes=args.processes,
                               interval=args.interval, nnunet_venv=args.nnunet_venv,
                               nnunet_trainers=args.nnunet_trainers, iterations=args.train_iterations,
                               autounet_epochs=1, nnunet_epochs=1, autounet_workers=None)
    ds = DATASETS[key]
    spec = bb.ensure_dataset(targs, lay, ds, env) if "copy_from" in ds else bt.ensure_dataset(targs, lay, env)
    bt.ensure_preprocessed(targs, lay, env, spec)  # (re)preprocessing empties the results: needs decided after it
    if args.nnunet_venv is not None:
        plans = bt.match_plans(lay)  # the same patch/batch/network as nnU-Net (bench_training.py's setup)
        info["plans"] = {k: plans[k] for k in ("nnunet", "autounet_used", "changes", "warnings")}
    for v, needed in (("nnunet", want_nn and (args.retrain or not nn_ckpt.is_file())),
                      ("autounet", want_au and (args.retrain or not au_ckpt.is_file()))):
        if not needed:
            continue
        print(f"models: training {v} fold 0 for {args.train_iterations} iterations (bench_training.py's commands)",
              flush=True)
        r = bt.run_nnunet(targs, lay, 0, env) if v == "nnunet" else bt.run_autounet(targs, lay, 0, env, "autounet")
        if r.returncode != 0:
            sys.exit(f"training {v} failed (rc={r.returncode}):\n" + log_tail(Path(r.log)))
        print(f"models: {v} trained in {r.wall_s:.0f} s (patch {r.patch_size}, batch {r.batch_size})")
        info["trained_here"].append({"variant": v, "wall_s": r.wall_s, "log": r.log, "patch_size": r.patch_size,
                                     "batch_size": r.batch_size})
    return info


def ensure_inputs(args: argparse.Namespace, lay: bt.Layout) -> tuple[Path, Path | None, list[str]]:
    """OUT/DS/infer_inputs (the first N cases' _0000 files) and OUT/DS/infer_inputs_1 (the first case)."""
    src = lay.raw / "imagesTr"
    files = sorted(p for p in src.iterdir() if p.name.endswith(tuple("_0000" + e for e in IMAGE_ENDINGS)))
    if len(files) < args.cases:
        sys.exit(f"{src}: only {len(files)} _0000 images, --cases {args.cases}")
    chosen = files[: args.cases]
    others = [p for p in src.iterdir() if p.name.startswith(tuple(f.name.split("_0000")[0] + "_" for f in chosen))
              and p not in chosen]
    if others:  # more than one channel: the models would need every channel
        sys.exit(f"{src}: the dataset has more than one channel ({others[0].name}); not supported here")
    inp = fresh(lay.out / "infer_inputs")
    for p in chosen:
        shutil.copy2(p, inp / p.name)
    one = None
    if not args.no_single:
        one = fresh(lay.out / "infer_inputs_1")
        shutil.copy2(chosen[0], one / chosen[0].name)
    return inp, one, [p.name for p in chosen]


# --------------------------------------------------------------------------- runs

@dataclass
class PredictRun:
    dataset: str
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
        cmd = [str(args.nnunet_venv / "bin" / "nnUNetv2_predict"), "-i", str(inp), "-o", str(out),
               "-d", str(lay.dataset_id), "-c", lay.config, "-f", "0", "-tr", NNUNET_TRAINER, "-device", "cpu",
               "-npp", "1", "-nps", "1"]
        return cmd, dict(bt.nnunet_env(env, lay), nnUNet_extTrainer=str(args.nnunet_trainers))
    cmd = [sys.executable, "-m", "autounet.cli", "predict", "-i", str(inp), "-o", str(out), "-d", str(lay.dataset_id),
           "-c", lay.config, "-f", "0", "--root", str(lay.au_root), "--device", "cpu", *VARIANTS[variant]]
    if variant.startswith("autounet_int8"):
        cache = lay.out / "int8_cache"
        return cmd, dict(env, AUTOUNET_CACHE=str(fresh(cache.with_name("int8_cold_cache")) if variant.endswith("cold")
                                                 else cache))
    return cmd, env


def output_dir(lay: bt.Layout, variant: str, n: int) -> Path:
    return lay.out / "infer_out" / f"{variant}_{n}case{'s' if n > 1 else ''}"


def run_predict(args: argparse.Namespace, key: str, lay: bt.Layout, variant: str, rnd: int, inp: Path, n: int,
                env: dict[str, str]) -> PredictRun:
    out = fresh(output_dir(lay, variant, n))
    cmd, run_env = predict_command(args, lay, variant, inp, out, env)
    log = lay.out / "logs" / "inference" / f"{variant}_{n}cases_round{rnd}.log"
    os.sync()
    load = os.getloadavg()[0]
    rc, wall, cpu, s = run_measured(cmd, run_env, log, args.interval)
    outputs = len(_seg_files(out))
    r = PredictRun(key, variant, rnd, n, rc, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                   outputs, wall / n, str(out), str(log), load)
    if rc == 0 and outputs != n:
        r.error = f"{outputs} label maps written, expected {n}"
    return r


# --------------------------------------------------------------------------- accuracy check

def parse_accuracy(spec: str) -> tuple[str, Path, Path | None]:
    """``NAME=FOLD_DIR[:ROOT]`` -> (NAME, FOLD_DIR, ROOT or None)."""
    name, sep, rest = spec.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not rest:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=FOLD_DIR[:ROOT], e.g. "
                                         "isbi=/ws/results/Dataset901_ISBI2012EM/2d/fold_0")
    fold, _, root = rest.partition(":")
    return name, Path(fold), Path(root) if root else None


def _validation_cases(fold_dir: Path, fold: str, roots: list[Path], ds: str) -> tuple[list[str], str]:
    """The fold's validation case ids and where they come from: a workspace's splits.json, else the fold's
    validation/ folder."""
    for root in roots:
        path = root / "preprocessed" / ds / "splits.json"
        if path.is_file():
            splits = json.loads(path.read_text())
            if fold.isdigit() and int(fold) < len(splits) and splits[int(fold)].get("val"):
                return sorted(splits[int(fold)]["val"]), f"fold {fold}'s 'val' in {path}"
    val = fold_dir / "validation"
    ids = sorted({p.name[: -len(e)] for p in _seg_files(val) for e in IMAGE_ENDINGS if p.name.endswith(e)})
    return ids, f"the label maps in {val}"


def _copy_cases(ids: list[str], images_src: Path, labels_src: Path, images: Path, labels: Path) -> list[str]:
    """Each case's channel files and label map into ``images``/``labels``; returns what is missing."""
    fresh(images)
    fresh(labels)
    missing = []
    for c in ids:
        chans = [p for p in images_src.iterdir() if re.fullmatch(re.escape(c) + r"_\d{4}\..+", p.name)]
        labs = [p for p in labels_src.iterdir() if p.name.endswith(IMAGE_ENDINGS) and p.name.split(".")[0] == c]
        if not chans or not labs:
            missing.append(c)
        for p in chans:
            shutil.copy2(p, images / p.name)
        for p in labs:
            shutil.copy2(p, labels / p.name)
    return missing


def _wait_for(ckpt: Path, seconds: float) -> None:
    if seconds > 0 and not ckpt.is_file():
        print(f"accuracy: waiting up to {seconds:.0f} s for {ckpt}", flush=True)
        t_end = time.time() + seconds
        while not ckpt.is_file() and time.time() < t_end:
            time.sleep(30)
    if ckpt.is_file():
        for _ in range(30):  # still being written/copied? wait until its size is stable
            size = ckpt.stat().st_size
            time.sleep(2)
            if ckpt.stat().st_size == size:
                break


def _evaluate(labels: Path, pred: Path, log: Path, env: dict[str, str]) -> dict:
    ecmd = [sys.executable, "-m", "autounet.cli", "evaluate", "-r", str(labels), "--prediction", str(pred)]
    p = subprocess.run(ecmd, env=env, capture_output=True, text=True)
    log.write_text(" ".join(ecmd) + "\n\n" + p.stdout + p.stderr)
    run: dict = {"evaluate_command": display(ecmd), "evaluate_rc": p.returncode}
    if p.returncode != 0:
        run["error"] = (p.stdout + p.stderr)[-3000:]
        return run
    summary = json.loads((pred / "summary.json").read_text())
    run["dice_per_class"] = {c: m.get("dice") for c, m in summary["mean"].items()}
    run["foreground_mean_dice"] = summary["foreground_mean"].get("dice")
    run["dice_per_case"] = {c["case_id"]: {k: v.get("dice") for k, v in c["metrics"].items()}
                            for c in summary["cases"]}
    return run


def accuracy_check(args: argparse.Namespace, name: str, fold_dir: Path, root: Path | None, variants: list[str],
                   env: dict[str, str]) -> dict:
    """Predict held-out images with a better-trained fold once per variant; Dice of each, and against fp32."""
    fold_dir = fold_dir.resolve()
    config_dir, ds_dir = fold_dir.parent, fold_dir.parent.parent
    fold, config, ds = fold_dir.name.removeprefix("fold_"), config_dir.name, ds_dir.name
    fold_root = ds_dir.parent.parent  # ROOT/results/DS/CONFIG/fold_F
    src_root = (root or fold_root).resolve()
    res: dict = {"name": name, "device": args.accuracy_device, "model": str(fold_dir), "root": str(src_root),
                 "dataset": ds, "configuration": config, "fold": fold, "variants": variants,
                 "reference": REFERENCE, "tolerance": DICE_TOLERANCE, "runs": {}}
    ckpt = fold_dir / "checkpoint_final.pt"
    _wait_for(ckpt, args.accuracy_wait)
    if not ckpt.is_file():
        return {**res, "error": f"{ckpt} not found"}
    ws = fresh(args.out / "acc" / name)
    res["workspace"] = str(ws)
    shutil.copytree(fold_dir, ws / "results" / ds / config / fold_dir.name,
                    ignore=lambda d, names: ["validation"] if Path(d) == fold_dir else [])
    for r in (fold_root, src_root):  # the plans (a check of predict's); the preprocessed arrays linked (--int8
        pre = r / "preprocessed" / ds  # calibrates on the fold's training cases)
        if (pre / "plans.json").is_file():
            (ws / "preprocessed" / ds).mkdir(parents=True)
            for p in pre.glob("*.json"):
                shutil.copy2(p, ws / "preprocessed" / ds / p.name)
            for folder in (f for f in pre.iterdir() if f.is_dir()):
                link_dir(folder, ws / "preprocessed" / ds / folder.name)
            break
    raw = src_root / "raw" / ds
    if raw.is_dir():
        link_dir(raw, ws / "raw" / ds)
    if (raw / "imagesTs").is_dir() and (raw / "labelsTs").is_dir():
        images, labels = raw / "imagesTs", raw / "labelsTs"
        res["cases_from"] = f"{images} and {labels}"
    else:
        ids, source = _validation_cases(fold_dir, fold, [fold_root, src_root], ds)
        if not ids:
            return {**res, "error": f"no imagesTs/labelsTs in {raw} and no validation cases of fold {fold} found"}
        images, labels = ws / "inputs", ws / "labels"
        missing = _copy_cases(ids, raw / "imagesTr", raw / "labelsTr", images, labels)
        if missing:
            return {**res, "error": f"{raw}: no imagesTr/labelsTr files of {missing}"}
        res["cases_from"] = f"validation cases of fold {fold} ({source}), {raw}/imagesTr and labelsTr"
        res["case_ids"] = ids
    res.update(images=str(images), labels=str(labels), cases=len(_seg_files(images)))
    print(f"\naccuracy check {name}: {fold_dir} (copied to {ws}); {res['cases']} images: {res['cases_from']}",
          flush=True)
    for v in variants:
        pred = fresh(ws / f"pred_{v}")
        cmd = [sys.executable, "-m", "autounet.cli", "predict", "-i", str(images), "-o", str(pred), "-d", ds,
               "-c", config, "-f", fold, "--root", str(ws), "--device", args.accuracy_device, *VARIANTS[v]]
        log = args.out / "logs" / "inference" / f"accuracy_{name}_{v}_predict.log"
        rc, wall, _, s = run_measured(cmd, env, log, args.interval)
        run = {"predict_command": display(cmd), "predict_rc": rc, "predict_wall_s": wall,
               "predict_peak_pss_mib": s.peak_pss_kib / 1024, "predictions": len(_seg_files(pred)), "log": str(log),
               "predictions_dir": str(pred)}
        if rc != 0:
            run["error"] = log_tail(log)
        else:
            run.update(_evaluate(labels, pred, log.with_name(f"accuracy_{name}_{v}_evaluate.log"), env))
        res["runs"][v] = run
        dice = _f(run.get("foreground_mean_dice"), ".4f")
        print(f"  {VARIANT_LABEL[v]:<23} rc={rc} {wall:6.1f} s  peak PSS {s.peak_pss_kib / 1024:6.0f} MiB  "
              f"foreground mean Dice {dice}", flush=True)
        if "error" in run:
            print(run["error"][-2000:], file=sys.stderr)
    ref = res["runs"].get(REFERENCE, {})
    for v, run in res["runs"].items():
        if v == REFERENCE or "dice_per_class" not in run or "dice_per_class" not in ref:
            continue
        diff = {c: run["dice_per_class"][c] - ref["dice_per_class"][c] for c in ref["dice_per_class"]}
        run["dice_difference_minus_fp32"] = diff
        run["foreground_mean_difference"] = run["foreground_mean_dice"] - ref["foreground_mean_dice"]
        run["max_abs_class_difference"] = max(abs(d) for d in diff.values())
        run["within_tolerance"] = run["max_abs_class_difference"] <= DICE_TOLERANCE
        run["voxel_agreement"] = voxel_agreement(Path(run["predictions_dir"]), Path(ref["predictions_dir"]))
    return res


def accuracy_ok(acc: dict) -> bool:
    if "error" in acc or any("error" in r for r in acc["runs"].values()):
        return False
    return all(r.get("within_tolerance", True) for r in acc["runs"].values())


def print_accuracy(acc: dict) -> None:
    print(f"\naccuracy check {acc['name']} (device {acc.get('device')}; differences against {VARIANT_LABEL[REFERENCE]})")
    if "error" in acc:
        print("  skipped:", acc["error"])
        return
    print(f"  model {acc['model']}; {acc['cases']} images: {acc['cases_from']}")
    for v, r in acc["runs"].items():
        if "dice_per_class" not in r:
            print(f"  {VARIANT_LABEL[v]:<23} FAILED: {r.get('error', '?')[-500:]}")
            continue
        per = "  ".join(f"class {c} {d:.4f}" for c, d in r["dice_per_class"].items())
        line = f"  {VARIANT_LABEL[v]:<23} {per}   foreground mean {r['foreground_mean_dice']:.4f}"
        if "dice_difference_minus_fp32" in r:
            va = r["voxel_agreement"]
            line += (f"   difference {r['foreground_mean_difference']:+.5f} (max |class| "
                     f"{r['max_abs_class_difference']:.5f}: {'within' if r['within_tolerance'] else 'OUTSIDE'} "
                     f"{DICE_TOLERANCE})   voxel agreement {_f(va['agreement'], '.6f')} "
                     f"({va['differing_voxels']} of {va['voxels']} differ)")
        print(line + f"   ({r['predict_wall_s']:.1f} s)")


# --------------------------------------------------------------------------- report

def _med(runs: list[PredictRun], variant: str, n: int, key: str) -> float | None:
    vals = [getattr(r, key) for r in runs if r.variant == variant and r.cases == n and r.returncode == 0 and not r.error]
    return float(np.median(vals)) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b; None unless both are positive (a start-up-free time can come out <= 0 under load)."""
    return a / b if a is not None and b is not None and a > 0 and b > 0 else None


def report(runs: list[PredictRun], variants: list[str], n: int, single: bool) -> dict:
    """Every run, the medians per variant and the ratios against nnU-Net and fp32."""
    hdr = (f"{'round':>5}  {'run':<23} {'cases':>5} {'wall s':>7} {'s/case':>7} {'cpu s':>7} {'peak PSS MiB':>12} "
           f"{'RSS-sum MiB':>11} {'procs':>5} {'load':>5}")
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        flag = "" if r.returncode == 0 and not r.error else f"  FAILED rc={r.returncode} {r.error} (see {r.log})"
        print(f"{r.round:>5}  {VARIANT_LABEL[r.variant]:<23} {r.cases:>5} {r.wall_s:>7.1f} {r.s_per_case:>7.2f} "
              f"{r.cpu_s:>7.1f} {r.peak_pss_mib:>12.0f} {r.peak_rss_sum_mib:>11.0f} {r.peak_processes:>5} "
              f"{r.load_avg_1min_before:>5.1f}{flag}")
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
    bad = [VARIANT_LABEL[v] for v in variants if (medians[v].get("s_per_case_startup_free") or 1) <= 0]
    if bad:
        print(f"  WARNING: start-up-free s/case <= 0 for {', '.join(bad)}: wall(1 case) varied by more than the "
              "cases cost (other load?); no ratio from it. More --repeats or --cases, or a quieter machine.")
    ratios: dict[str, dict] = {}
    nn, fp = medians.get("nnunet"), medians.get(REFERENCE)
    for v in variants:
        if v == "nnunet":
            continue
        a = medians[v]
        rr: dict = {}
        if nn:
            rr.update({
                "time_nnunet_over_variant": _ratio(nn["wall_s"], a["wall_s"]),
                "time_startup_free_nnunet_over_variant":
                    _ratio(nn.get("s_per_case_startup_free"), a.get("s_per_case_startup_free")),
                "cpu_time_nnunet_over_variant": _ratio(nn["cpu_s"], a["cpu_s"]),
                "cpu_time_startup_free_nnunet_over_variant":
                    _ratio(nn.get("cpu_s_per_case_startup_free"), a.get("cpu_s_per_case_startup_free")),
                "peak_pss_variant_over_nnunet": _ratio(a["peak_pss_mib"], nn["peak_pss_mib"])})
        if fp and v != REFERENCE:
            rr.update({"time_fp32_over_variant": _ratio(fp["wall_s"], a["wall_s"]),
                       "time_startup_free_fp32_over_variant":
                           _ratio(fp.get("s_per_case_startup_free"), a.get("s_per_case_startup_free")),
                       "peak_pss_variant_over_fp32": _ratio(a["peak_pss_mib"], fp["peak_pss_mib"])})
        ratios[v] = rr
    if nn and nn["wall_s"]:
        print("\nratios (time nnU-Net / variant: > 1 means the variant is faster; peak PSS variant / nnU-Net: < 1 means "
              "it is smaller)")
        for v, rr in ratios.items():
            print(f"  {VARIANT_LABEL[v]:<23} time {_f(rr['time_nnunet_over_variant'], '.2f')}x"
                  + (f" (start-up-free {_f(rr['time_startup_free_nnunet_over_variant'], '.2f')}x)" if single else "")
                  + f"   cpu time {_f(rr['cpu_time_nnunet_over_variant'], '.2f')}x"
                  + f"   peak PSS {_f(rr['peak_pss_variant_over_nnunet'], '.2f')}")
    return {"medians": medians, "ratios": ratios}


def agreements(lay: bt.Layout, runs: list[PredictRun], variants: list[str], n: int) -> dict:
    """Each autounet variant's label maps (last round, all cases) against autounet_fp32's, voxel by voxel."""
    def ok(v: str) -> bool:
        last = [r for r in runs if r.variant == v and r.cases == n]
        return bool(last) and last[-1].returncode == 0 and not last[-1].error

    if REFERENCE not in variants or not ok(REFERENCE):
        return {}
    out = {}
    for v in variants:
        if v not in ("nnunet", REFERENCE) and ok(v):
            out[v] = voxel_agreement(output_dir(lay, v, n), output_dir(lay, REFERENCE, n))
    return out


def summary_rows(key: str, variants: list[str], summary: dict, agree: dict, skipped: dict[str, str]) -> list[dict]:
    """One row per variant of the dataset's summary table."""
    rows = []
    for v in variants:
        m, rr = summary["medians"][v], summary["ratios"].get(v, {})
        rows.append({"dataset": key, "variant": v, "label": VARIANT_LABEL[v],
                     "s_per_case_startup_free": m.get("s_per_case_startup_free"), "s_per_case": m["s_per_case"],
                     "peak_pss_mib": m["peak_pss_mib"],
                     "time_startup_free_nnunet_over_variant": rr.get("time_startup_free_nnunet_over_variant"),
                     "time_nnunet_over_variant": rr.get("time_nnunet_over_variant"),
                     "peak_pss_variant_over_nnunet": rr.get("peak_pss_variant_over_nnunet"),
                     "voxel_agreement_with_fp32": 1.0 if v == REFERENCE and agree
                     else (agree.get(v) or {}).get("agreement")})
    for v, why in skipped.items():
        rows.append({"dataset": key, "variant": v, "label": VARIANT_LABEL[v], "skipped": why})
    return rows


def print_summary(key: str, ds: dict, rows: list[dict], n: int) -> None:
    print(f"\nsummary {key} ({ds['name']}, {ds['configuration']}; medians, {n} cases; ratios against nnU-Net; "
          f"agreement: voxels equal to {VARIANT_LABEL[REFERENCE]}'s)")
    hdr = (f"  {'variant':<23} {'s/case s-free':>13} {'s/case wall':>11} {'peak PSS MiB':>12} "
           f"{'nnU-Net/v s-free':>16} {'nnU-Net/v wall':>14} {'PSS v/nnU-Net':>13} {'agreement':>10}")
    print(hdr)
    for r in rows:
        if "skipped" in r:
            print(f"  {r['label']:<23} skipped: {r['skipped']}")
            continue
        tf, tw = r["time_startup_free_nnunet_over_variant"], r["time_nnunet_over_variant"]
        print(f"  {r['label']:<23} {_f(r['s_per_case_startup_free'], '.2f'):>13} {_f(r['s_per_case'], '.2f'):>11} "
              f"{_f(r['peak_pss_mib'], '.0f'):>12} {'-' if tf is None else f'{tf:.2f}x':>16} "
              f"{'-' if tw is None else f'{tw:.2f}x':>14} {_f(r['peak_pss_variant_over_nnunet'], '.2f', '-'):>13} "
              f"{_f(r['voxel_agreement_with_fp32'], '.6f', '-'):>10}")


def markdown(rows: list[dict], acc: dict[str, dict]) -> str:
    """The tables for benchmarks/README.md."""
    def x(v) -> str:
        return "-" if v is None else f"{v:.2f}x"

    lines = ["| dataset | variant | start-up-free s/case | s/case (wall) | peak PSS MiB | time nnU-Net / variant "
             "(start-up-free) | time nnU-Net / variant (wall) | peak PSS variant / nnU-Net | voxel agreement with "
             "`--no-amp` |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['dataset']} | {r['label']} | skipped: {r['skipped']} | | | | | | |")
            continue
        lines.append(f"| {r['dataset']} | {r['label']} | {_f(r['s_per_case_startup_free'], '.2f', '-')} | "
                     f"{_f(r['s_per_case'], '.2f', '-')} | {_f(r['peak_pss_mib'], '.0f', '-')} | "
                     f"{x(r['time_startup_free_nnunet_over_variant'])} | {x(r['time_nnunet_over_variant'])} | "
                     f"{_f(r['peak_pss_variant_over_nnunet'], '.2f', '-')} | "
                     f"{_f(r['voxel_agreement_with_fp32'], '.6f', '-')} |")
    if acc:
        lines += ["", "| model | cases | variant | foreground mean Dice | difference to `--no-amp` | max class "
                      "difference | voxel agreement with `--no-amp` | predict wall s |", "|---|---|---|---|---|---|---|---|"]
        for name, a in acc.items():
            if "error" in a:
                lines.append(f"| {name} | - | - | {a['error']} | | | | |")
                continue
            for v, r in a["runs"].items():
                va = (r.get("voxel_agreement") or {}).get("agreement")
                lines.append(f"| {name} | {a['cases']} | {VARIANT_LABEL[v]} | "
                             f"{_f(r.get('foreground_mean_dice'), '.4f', 'failed')} | "
                             f"{_f(r.get('foreground_mean_difference'), '+.5f', '-')} | "
                             f"{_f(r.get('max_abs_class_difference'), '.5f', '-')} | "
                             f"{'reference' if v == REFERENCE else _f(va, '.6f', '-')} | {r['predict_wall_s']:.1f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out") / "inference",
                    help="output folder (default ./bench_out/inference); each dataset in OUT/DATASET")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS),
                    help="default: example3d isbi")
    ap.add_argument("--isbi-source", type=Path, default=DATASETS["isbi"]["copy_from"],
                    help=f"the ISBI dataset copied into OUT/isbi/raw (default {DATASETS['isbi']['copy_from']})")
    ap.add_argument("--nnunet-venv", type=Path, default=None,
                    help="virtualenv holding nnunetv2; omit to time autounet only (with its own plan)")
    ap.add_argument("--nnunet-trainers", type=Path, default=bt.DEFAULT_TRAINERS,
                    help=f"folder holding {NNUNET_TRAINER}.py (default {bt.DEFAULT_TRAINERS})")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each runs every variant once (default 3)")
    ap.add_argument("--cases", type=int, default=8, help="images to predict (default 8)")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the 1-case runs (no start-up-free time per case)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="what to run in each round, in this order (default: all)")
    ap.add_argument("--train-iterations", type=int, default=4,
                    help="iterations to train a missing model with (default 4)")
    ap.add_argument("--train-cases", type=int, default=20,
                    help="cases of example3d if it has to be written (bench_training.py's default 20)")
    ap.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    ap.add_argument("-p", "--processes", type=int, default=2,
                    help="processes for preprocessing/training a missing model (default 2); prediction uses 1")
    ap.add_argument("--accuracy", type=parse_accuracy, action="append", default=[], metavar="NAME=FOLD_DIR[:ROOT]",
                    help="Dice check of --accuracy-variants with a better-trained autounet fold "
                         "ROOT/results/DATASET/CONFIG/fold_F; ROOT (default: the fold's own workspace root) holds "
                         "raw/DATASET: imagesTs+labelsTs are predicted, else the fold's validation cases; "
                         "repeatable (default: no check)")
    ap.add_argument("--accuracy-variants", nargs="+", choices=[v for v in VARIANTS if v != "nnunet"],
                    default=ACCURACY_VARIANTS, help=f"default: {' '.join(ACCURACY_VARIANTS)} ({REFERENCE} is "
                                                    "always added: the reference)")
    ap.add_argument("--accuracy-wait", type=float, default=0,
                    help="seconds to wait for an accuracy model's checkpoint_final.pt to appear (default 0)")
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
    if len({name for name, _, _ in args.accuracy}) != len(args.accuracy):
        ap.error("--accuracy: each NAME once")
    if args.accuracy_only and not args.accuracy:
        ap.error("--accuracy-only needs --accuracy")
    if args.cases == 1:
        args.no_single = True
    if "isbi" in args.datasets and not args.accuracy_only:
        if not (args.isbi_source / "dataset.json").is_file():
            ap.error(f"{args.isbi_source}/dataset.json not found (--isbi-source)")
        DATASETS["isbi"] = {**DATASETS["isbi"], "copy_from": args.isbi_source.resolve()}
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.variants = list(dict.fromkeys(args.variants))
    acc_variants = list(dict.fromkeys([REFERENCE, *args.accuracy_variants]))
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
    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    t_start = time.perf_counter()

    skipped = unsupported_variants(list(dict.fromkeys(args.variants + (acc_variants if args.accuracy else []))), env)
    for v, why in skipped.items():
        print(f"skipping {v}: {why}")
    variants = [v for v in args.variants if v not in skipped]
    acc_variants = [v for v in acc_variants if v not in skipped]
    bf16 = cpu_native_bf16()
    per_dataset: dict[str, dict] = {}
    rows: list[dict] = []
    accuracy: dict[str, dict] = {}
    path = args.out / "bench_inference.json"

    def write_json() -> None:
        out = {
            "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "datasets": per_dataset,
            "cases": args.cases,
            "repeats": args.repeats,
            "variants": variants,
            "variants_skipped": {v: why for v, why in skipped.items() if v in args.variants},
            "variant_arguments": {v: VARIANTS[v] for v in variants},
            "autounet_cpu_native_bf16": bf16,
            "sampling_interval_s": args.interval,
            "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "load_avg_at_end": os.getloadavg()},
            "summary": rows,
            "accuracy_check": accuracy,
            "markdown": markdown(rows, accuracy),
            "notes": [
                "s_per_case = total wall / cases, start-up (imports, model loading) included for both tools",
                "s_per_case_startup_free = (median wall(N cases) - median wall(1 case)) / (N - 1)",
                f"peak PSS: max over {args.interval} s samples of the summed PSS of the tool's process tree",
                "the bench models are trained for a few iterations only: their segmentations are not compared "
                "with labels; voxel agreement is against autounet --no-amp's masks of the same images (last round)",
                "arithmetic on a CPU: nnU-Net and autounet --no-amp float32 (PyTorch); --backend onnxruntime "
                "float32; autounet's default (--backend auto = torch for a checkpoint, since commit dccf562), "
                "--backend torch and --backend openvino bfloat16 where the CPU has native bf16 "
                "(autounet_cpu_native_bf16), else float32",
            ],
            "total_s": time.perf_counter() - t_start,
        }
        path.write_text(json.dumps(out, indent=2, default=str))

    if not args.accuracy_only:
        for key in args.datasets:
            ds = DATASETS[key]
            lay = layout(args.out, key)
            print(f"\n=== {key}: {ds['name']}, configuration {ds['configuration']}, in {lay.out} ===", flush=True)
            models = ensure_models(args, key, lay, env)
            inp, one, input_names = ensure_inputs(args, lay)
            sizes = [args.cases] + ([] if args.no_single else [1])
            print(f"\nbenchmark {key}: {args.repeats} round(s) x {variants} x {sizes} case(s), {os.cpu_count()} "
                  f"cores; CPU with native bf16: {bf16}; logs in {lay.out / 'logs' / 'inference'}", flush=True)
            runs: list[PredictRun] = []
            for rnd in range(1, args.repeats + 1):
                for n, folder in ((args.cases, inp), (1, one)):
                    if folder is None:
                        continue
                    for v in variants:
                        r = run_predict(args, key, lay, v, rnd, folder, n, env)
                        runs.append(r)
                        ok = r.returncode == 0 and not r.error
                        print(f"  round {rnd} {VARIANT_LABEL[v]:<23} {n} case(s)  wall {r.wall_s:6.1f} s  "
                              f"{r.s_per_case:6.2f} s/case  peak PSS {r.peak_pss_mib:6.0f} MiB  "
                              f"{'ok' if ok else f'FAILED rc={r.returncode} {r.error}'}", flush=True)
                        if not ok:
                            print(log_tail(Path(r.log)), file=sys.stderr)
            summary = report(runs, variants, args.cases, not args.no_single)
            agree = agreements(lay, runs, variants, args.cases)
            ds_rows = summary_rows(key, variants, summary, agree,
                                   {v: w for v, w in skipped.items() if v in args.variants})
            rows.extend(ds_rows)
            print_summary(key, ds, ds_rows, args.cases)
            per_dataset[key] = {
                "name": ds["name"], "id": ds["id"], "configuration": ds["configuration"], "folder": str(lay.out),
                "raw": str(lay.raw), "inputs": input_names, "inputs_folder": str(inp),
                "commands": {v: display(predict_command(args, lay, v, Path("IN"), Path("OUT"), env)[0])
                             for v in variants},
                "models": models, "runs": [asdict(r) for r in runs], **summary,
                "voxel_agreement_with_fp32": agree, "ok": all(r.returncode == 0 and not r.error for r in runs)}
            write_json()

    for name, fold_dir, root in args.accuracy:
        accuracy[name] = accuracy_check(args, name, fold_dir, root, acc_variants, env)
        print_accuracy(accuracy[name])
        write_json()

    if rows:
        for key in per_dataset:
            print_summary(key, DATASETS[key], [r for r in rows if r["dataset"] == key], args.cases)
    for a in accuracy.values():
        print_accuracy(a)
    print("\nmarkdown (benchmarks/README.md):\n")
    print(markdown(rows, accuracy))
    write_json()
    print(f"\nwritten {path}  (total {time.perf_counter() - t_start:.0f} s)")
    ok = all(d["ok"] for d in per_dataset.values()) and all(accuracy_ok(a) for a in accuracy.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
