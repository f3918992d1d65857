"""``autounet run DATASET --time-budget B`` end to end: total wall time, where it went (share in
training steps, iterations per fold against the learning minimum), chosen configuration,
cross-validated Dice and, where the dataset has test cases, test Dice; and the same run
SIGKILLed part-way and started again.

Each (dataset, mode) gets a fresh workspace and an empty calibration cache, as a new user's
first run would. Datasets: ``isbi`` (a copy of ``../shared/datasets/Dataset901_ISBI2012EM``, 2D),
``example3d`` (``make_example_dataset --dims 3 --cases 20 --seed 0``, as bench_budget.py) and
``demo`` (the main job's: anisotropic 16x48x48 volumes, 20 training and 5 test cases), ``echo``
(echocardiography-like 2D+time videos, 100 frames, two labelled) and ``mri`` (200 training and 60
test volumes of about 36x50x35, two classes: closer to a real MRI set).
Mode ``full`` runs once; ``busy`` runs once while another process keeps one core busy (a laptop
doing other work); ``killed`` sends SIGKILL to the whole process group at ``--kill-at`` of the
budget, then runs the same command again: its total is the sum of both sessions' wall times.
``--no-amp`` trains in float32 (a CPU with native bfloat16 runs 3D steps about 2x faster and
hides what a CPU without it sees). Run on a quiet machine; nothing else meanwhile.

    python benchmarks/bench_run.py --out bench_out/run --budget 5m --datasets demo --modes full busy --no-amp
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared" / "datasets").resolve()
DATASETS = {"isbi": ("Dataset901_ISBI2012EM", {"copy_from": SHARED / "Dataset901_ISBI2012EM"}),
            "example3d": ("Dataset980_Budget3D", {"make": ["--dims", "3", "--cases", "20", "--seed", "0"]}),
            "demo": ("Dataset900_Example", {"make": ["--dims", "3", "--cases", "20", "--test-cases", "5", "--anisotropic",
                                                     "--shape", "16", "48", "48"]}),
            "echo": ("Dataset982_Echo", {"make": ["--video", "100"]}),
            "mri": ("Dataset983_MRILike", {"make": ["--dims", "3", "--cases", "200", "--test-cases", "60",
                                                    "--shape", "36", "50", "35"]})}


def _autounet(*args: str) -> list[str]:
    return [sys.executable, "-m", "autounet", *args]


def _dataset(workspace: Path, name: str, spec: dict) -> Path:
    raw = workspace / "raw" / name
    if "copy_from" in spec:
        shutil.copytree(spec["copy_from"], raw)
    else:
        subprocess.run(_autounet("make_example_dataset", str(raw), *spec["make"]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return raw


def _session(command: list[str], env: dict, log: Path, kill_after: float | None) -> tuple[float, int]:
    """One session's wall time and exit code (-9 when killed)."""
    started = time.monotonic()
    with open(log, "a") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
    return time.monotonic() - started, code


def _busy() -> subprocess.Popen:
    """Another process keeping one core busy until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _test_dice(workspace: Path, raw: Path, env: dict, name: str) -> float | None:
    """Predict the held-out cases with the chosen model and score them (None without test cases)."""
    if not (raw / "labelsTs").is_dir():
        return None
    out = workspace / "test_predictions"
    subprocess.run(_autounet("predict", "-i", str(raw / "imagesTs"), "-o", str(out), "-d", name, "--root", str(workspace)),
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scores = workspace / "test_scores"
    subprocess.run(_autounet("evaluate", "-r", str(raw / "labelsTs"), "--prediction", str(out), "-o", str(scores)),
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((scores / "summary.json").read_text())["foreground_mean"]["dice"]


def _spending(results: Path, record: dict) -> dict:
    """Share of the wall time in training steps and iterations per fold, from the folds' spending.json."""
    folds = [json.loads(f.read_text()) for c in record["configurations"]
             for f in sorted((results / c).glob("fold_*/spending.json"))]
    train_s = sum(f["train_s"] for f in folds)
    return {"training_share": round(train_s / max(record["used_s"], 1e-9), 3),
            "iterations": {c: [f["iterations"] for f in folds if f["configuration"] == c] for c in record["configurations"]},
            "learning_minimum": {f["configuration"]: f["learning_iterations"] for f in folds}}


def bench(out: Path, key: str, mode: str, budget: str, budget_s: float, kill_at: float, no_amp: bool = False) -> dict:
    name, spec = DATASETS[key]
    workspace = out / f"{key}_{mode}"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    raw = _dataset(workspace, name, spec)
    env = dict(os.environ, AUTOUNET_CACHE=str(workspace / "cache"), PYTHONPATH=str(REPO))
    env.pop("AUTOUNET_ROOT", None)
    command = _autounet("run", str(raw), "--root", str(workspace), "--time-budget", budget,
                        *(["--no-amp"] if no_amp else []))
    log = workspace / "run.log"
    hog = _busy() if mode == "busy" else None
    try:
        sessions = [_session(command, env, log, kill_at * budget_s if mode == "killed" else None)]
        if mode == "killed":
            sessions.append(_session(command, env, log, None))
    finally:
        if hog is not None:
            hog.kill()
    results = workspace / "results" / name
    cv = json.loads((results / "cross_validation.json").read_text()) if sessions[-1][1] == 0 else {}
    record = json.loads((results / "run.json").read_text())
    best = cv.get("best")
    row = {"dataset": key, "mode": mode, "budget_s": budget_s, "sessions_wall_s": [round(s, 1) for s, _ in sessions],
           "exit_codes": [c for _, c in sessions], "total_wall_s": round(sum(s for s, _ in sessions), 1),
           "run_json_used_s": round(record["used_s"], 1), "configurations": record["configurations"], "best": best,
           "cv_fg_dice": cv["entries"][best]["foreground_mean_dice"] if best else None,
           "cv_fg_dice_after_pp": cv.get("foreground_mean_dice_after_postprocessing"),
           **_spending(results, record),
           "test_fg_dice": _test_dice(workspace, raw, env, name) if best else None}
    row["wall_over_budget"] = round(row["total_wall_s"] / budget_s, 3)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "run")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--datasets", nargs="+", default=["isbi", "example3d", "demo"], choices=list(DATASETS))
    parser.add_argument("--modes", nargs="+", default=["full", "killed"], choices=["full", "busy", "killed"])
    parser.add_argument("--no-amp", action="store_true", help="float32 training and prediction")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the budget after which to SIGKILL")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from autounet.training.budget import parse_duration

    budget_s = parse_duration(args.budget)
    rows = [bench(args.out.resolve(), key, mode, args.budget, budget_s, args.kill_at, args.no_amp)
            for mode in args.modes for key in args.datasets]
    (args.out / "bench_run.json").write_text(json.dumps(rows, indent=1))
    print("\n| dataset | mode | sessions (s) | total wall / budget | in training | iterations per fold (minimum) | "
          "chosen | CV Dice (after pp) | test Dice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        its = "; ".join(f"{c} {'-'.join(map(str, v))} ({r['learning_minimum'].get(c, '?')})" for c, v in r["iterations"].items())
        test = "–" if r["test_fg_dice"] is None else f"{r['test_fg_dice']:.3f}"
        print(f"| {r['dataset']} | {r['mode']} | {' + '.join(map(str, r['sessions_wall_s']))} | "
              f"{r['total_wall_s']:.0f} s / {r['budget_s']:.0f} s = {r['wall_over_budget']:.2f} | "
              f"{100 * r['training_share']:.0f}% | {its} | {r['best']} | {r['cv_fg_dice']:.4f} "
              f"({r['cv_fg_dice_after_pp']:.4f}) | {test} |")


if __name__ == "__main__":
    main()
