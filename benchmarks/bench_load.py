#!/usr/bin/env python3
"""A time budget on a busy machine: one fold, quiet vs a competing CPU-bound process.

For each dataset, fold 0 is trained with ``autounet train --time-budget B`` (an empty
calibration cache per run, so that every run measures the machine) in three cases:

(a) ``quiet``: nothing else runs;
(b) ``calibration``: a busy Python loop (one core) runs from before the start until the budget
    decision is logged ("final validation expected"), i.e. during the calibration only;
(c) ``whole``: the busy loop runs for the whole fold.

Reported per run: the network the budget chose first and the one it trained (the fold may start
over after its first epoch), the calibration line(s), wall time and its ratio to the budget, and
the validation Dice (``fold_0/validation/summary.json``). ``--demo`` also runs ``autounet demo``
(its default 5-minute total) quiet and with the busy loop for the whole run, and reports its wall
time. Datasets: ``example3d`` (``make_example_dataset --dims 3 --cases 20``, ``3d_fullres``) and
``isbi`` (a copy of ``../shared/datasets/Dataset901_ISBI2012EM``, ``2d``). Run on a quiet machine.

    python benchmarks/bench_load.py --budget 20m --datasets example3d isbi --demo
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSY = "import time\nwhile True: pass"
DATASETS = {
    "example3d": {"name": "Dataset985_Load3D", "configuration": "3d_fullres",
                  "make": ["--dims", "3", "--cases", "20", "--seed", "0"]},
    "isbi": {"name": "Dataset901_ISBI2012EM", "configuration": "2d",
             "copy": REPO.parent / "shared" / "datasets" / "Dataset901_ISBI2012EM"},
}
CASES = ("quiet", "calibration", "whole")


def autounet(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "autounet", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def ensure_dataset(root: Path, ds: dict) -> None:
    raw = root / "raw" / ds["name"]
    if not (root / "preprocessed" / ds["name"] / "plans.json").is_file():
        if "copy" in ds:
            shutil.rmtree(raw, ignore_errors=True)
            shutil.copytree(ds["copy"], raw)
        else:
            subprocess.run([sys.executable, "-m", "autounet", "make_example_dataset", str(raw), *ds["make"],
                            "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "autounet", "plan_and_preprocess", ds["name"], "--root", str(root),
                        "-p", "2", "-c", ds["configuration"]], check=True, stdout=subprocess.DEVNULL)


def facts(fold: Path) -> dict:
    """Network choices, calibrations and Dice from a fold's log and validation summary."""
    text = (fold / "training_log.txt").read_text(errors="replace") if (fold / "training_log.txt").is_file() else ""
    out: dict = {
        "first_choice": (re.findall(r"budget [^\n]*?-> \d+ iterations \([^)]*\)[^;\n]*; ([^\n;]+?)(?:; final|\n)",
                                    text) or [None])[0],
        "restarted_with": (re.findall(r"starting over with it", text) and
                           re.findall(r"another network \(([^)]+) instead", text) or [None])[0],
        "calibrations": re.findall(r"calibration[^\n]*", text),
        "speed_check": re.findall(r"first epoch took[^\n]*|measured again[^\n]*", text),
        "epochs": len(re.findall(r"\bepoch \d+/\d+", text)),
    }
    out["trained"] = out["restarted_with"] or out["first_choice"]
    try:
        out["dice"] = json.loads((fold / "validation" / "summary.json").read_text())["foreground_mean_dice"]
    except (OSError, ValueError, KeyError):
        out["dice"] = None
    return out


def run_fold(root: Path, ds: dict, case: str, budget: str, logs: Path) -> dict:
    cache = root / "cache" / f"{ds['name']}_{case}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    fold_root = root / "results" / ds["name"] / ds["configuration"]
    shutil.rmtree(fold_root, ignore_errors=True)
    env = dict(os.environ, AUTOUNET_CACHE=str(cache))
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if case != "quiet" else None
    time.sleep(1.0 if busy else 0)
    start = time.monotonic()
    proc = autounet("train", ds["name"], ds["configuration"], "0", "--root", str(root), "--time-budget", budget,
                    "--device", "cpu", env=env, log=logs / f"{ds['name']}_{case}.log")
    busy_s = None
    log_file = fold_root / "fold_0" / "training_log.txt"
    while proc.poll() is None:
        time.sleep(0.5)
        if case == "calibration" and busy is not None and log_file.is_file() and \
                "final validation expected" in log_file.read_text(errors="replace"):
            busy.kill()
            busy.wait()
            busy, busy_s = None, time.monotonic() - start
    wall = time.monotonic() - start
    if busy is not None:
        busy_s = wall
        busy.kill()
        busy.wait()
    return {"dataset": ds["name"], "case": case, "rc": proc.returncode, "wall_s": wall, "competitor_s": busy_s,
            **facts(fold_root / "fold_0")}


def run_demo(root: Path, case: str, logs: Path) -> dict:
    work = root / f"demo_{case}"
    shutil.rmtree(work, ignore_errors=True)
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if case != "quiet" else None
    start = time.monotonic()
    env = dict(os.environ, AUTOUNET_CACHE=str(work / "cache"), AUTOUNET_ROOT=str(work))
    rc = autounet("demo", env=env, log=logs / f"demo_{case}.log").wait()
    wall = time.monotonic() - start
    if busy is not None:
        busy.kill()
        busy.wait()
    text = (logs / f"demo_{case}.log").read_text(errors="replace")
    m = re.search(r"test Dice \(held-out cases\):[^\n]*foreground mean ([0-9.]+)", text)
    return {"dataset": "demo", "case": case, "rc": rc, "wall_s": wall, "test_dice": float(m.group(1)) if m else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", default="20m", help="each fold's time budget (default 20m)")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--demo", action="store_true", help="also run the demo quiet and under load")
    ap.add_argument("--root", type=Path, default=Path("bench_out/load"))
    args = ap.parse_args(argv)
    root = args.root.resolve()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for key in args.datasets:
        ensure_dataset(root, DATASETS[key])
        for case in args.cases:
            r = run_fold(root, DATASETS[key], case, args.budget, logs)
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.demo:
        for case in ("quiet", "whole"):
            r = run_demo(root, case, logs)
            results.append(r)
            print(json.dumps(r), flush=True)
    (root / "bench_load.json").write_text(json.dumps({"budget": args.budget, "cores": os.cpu_count(),
                                                      "results": results}, indent=1))
    print("\n| dataset | case | network chosen first | network trained | wall (s) | Dice |")
    print("|---|---|---|---|---|---|")
    for r in results:
        dice = r.get("dice", r.get("test_dice"))
        print(f"| {r['dataset']} | {r['case']} | {r.get('first_choice', '')} | {r.get('trained', '')} | "
              f"{r['wall_s']:.0f} | {'' if dice is None else f'{dice:.4f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
