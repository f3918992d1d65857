"""``autounet run DATASET --time-budget B`` end to end: total wall time, chosen configuration,
cross-validated Dice; and the same run SIGKILLed part-way and started again.

Each (dataset, mode) gets a fresh workspace and an empty calibration cache, as a new user's
first run would. Datasets: ``isbi`` (a copy of ``../shared/datasets/Dataset901_ISBI2012EM``, 2D)
and ``example3d`` (``make_example_dataset --dims 3 --cases 20 --seed 0``, as bench_budget.py).
Mode ``full`` runs once; mode ``killed`` sends SIGKILL to the whole process group at
``--kill-at`` of the budget, then runs the same command again: its total is the sum of both
sessions' wall times. Run on a quiet machine; nothing else meanwhile.

    python benchmarks/bench_run.py --out bench_out/run --budget 20m --datasets isbi example3d --modes full killed
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
            "example3d": ("Dataset980_Budget3D", {"make": ["--dims", "3", "--cases", "20", "--seed", "0"]})}


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


def bench(out: Path, key: str, mode: str, budget: str, budget_s: float, kill_at: float) -> dict:
    name, spec = DATASETS[key]
    workspace = out / f"{key}_{mode}"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    raw = _dataset(workspace, name, spec)
    env = dict(os.environ, AUTOUNET_CACHE=str(workspace / "cache"), PYTHONPATH=str(REPO))
    env.pop("AUTOUNET_ROOT", None)
    command = _autounet("run", str(raw), "--root", str(workspace), "--time-budget", budget)
    log = workspace / "run.log"
    sessions = [_session(command, env, log, kill_at * budget_s if mode == "killed" else None)]
    if mode == "killed":
        sessions.append(_session(command, env, log, None))
    results = workspace / "results" / name
    cv = json.loads((results / "cross_validation.json").read_text()) if sessions[-1][1] == 0 else {}
    record = json.loads((results / "run.json").read_text())
    best = cv.get("best")
    row = {"dataset": key, "mode": mode, "budget_s": budget_s, "sessions_wall_s": [round(s, 1) for s, _ in sessions],
           "exit_codes": [c for _, c in sessions], "total_wall_s": round(sum(s for s, _ in sessions), 1),
           "run_json_used_s": round(record["used_s"], 1), "configurations": record["configurations"], "best": best,
           "cv_fg_dice": cv["entries"][best]["foreground_mean_dice"] if best else None,
           "cv_fg_dice_after_pp": cv.get("foreground_mean_dice_after_postprocessing")}
    row["wall_over_budget"] = round(row["total_wall_s"] / budget_s, 3)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "run")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--modes", nargs="+", default=["full", "killed"], choices=["full", "killed"])
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the budget after which to SIGKILL")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from autounet.training.budget import parse_duration

    budget_s = parse_duration(args.budget)
    rows = [bench(args.out.resolve(), key, mode, args.budget, budget_s, args.kill_at)
            for mode in args.modes for key in args.datasets]
    (args.out / "bench_run.json").write_text(json.dumps(rows, indent=1))
    print("\n| dataset | mode | sessions (s) | total wall / budget | configurations | chosen | CV Dice (after pp) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['mode']} | {' + '.join(map(str, r['sessions_wall_s']))} | "
              f"{r['total_wall_s']:.0f} s / {r['budget_s']:.0f} s = {r['wall_over_budget']:.2f} | "
              f"{' + '.join(r['configurations'])} | {r['best']} | {r['cv_fg_dice']:.4f} ({r['cv_fg_dice_after_pp']:.4f}) |")


if __name__ == "__main__":
    main()
