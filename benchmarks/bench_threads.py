#!/usr/bin/env python3
"""Torch threads and augmentation workers on a small CPU, with and without a competing process.

For each setting (torch intra-op threads x augmentation workers x competing busy processes) a
fresh process times training steps of fold 0 of a preprocessed configuration: the real sampler,
augmentation, network, loss and optimiser (what ``autounet train`` runs), after warm-up steps.
The competing process is a busy Python loop started before the measurement and stopped after
it (``--competitors``). Settings alternate in rounds (``--rounds``); the report gives the median
seconds per iteration of every setting and its ratio to the quiet default.

    python benchmarks/bench_threads.py --root bench_out/threads --steps 12 --rounds 2

The dataset (the README's 3D example, ``Dataset900_Example``-like, 20 cases, anisotropic
16 x 48 x 48) is generated and preprocessed in ``--root`` when missing. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUSY = "import time\nwhile True: pass"
DATASET = "Dataset990_Threads"

CHILD = r'''
import json, statistics, sys, time
import torch
from autounet.workspace import dataset_paths
from autounet.training.setup import prepare_fold
from autounet.training.config import TrainingConfig
from autounet.training.batches import make_inputs
from autounet.training.state import new_run
from autounet.training.steps import train_epoch
root, config_name, threads, workers, warmup, steps = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
if threads > 0:
    torch.set_num_threads(threads)
setup = prepare_fold(dataset_paths(root, "''' + DATASET + r'''"), config_name, 0)
config = TrainingConfig(num_workers=workers)
device = torch.device("cpu")
inputs = make_inputs(setup, config, device)
run = new_run(setup, config, device)
batches, stop = inputs.training(0, 0)
try:
    train_epoch(run, batches, warmup, False)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        train_epoch(run, batches, 1, False)
        times.append(time.perf_counter() - t)
finally:
    stop()
print(json.dumps({"median": statistics.median(times), "times": times, "threads": torch.get_num_threads()}))
'''


def ensure_data(root: Path) -> None:
    paths = root / "preprocessed" / DATASET / "plans.json"
    if paths.is_file():
        return
    raw = root / "raw" / DATASET
    subprocess.run([sys.executable, "-m", "autounet", "make_example_dataset", str(raw), "--dims", "3", "--cases", "20",
                    "--anisotropic", "--shape", "16", "48", "48", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "autounet", "plan_and_preprocess", DATASET, "--root", str(root), "-p", "2"],
                   check=True, stdout=subprocess.DEVNULL)


def measure(root: Path, config: str, threads: int, workers: int, competitors: int, warmup: int, steps: int) -> dict:
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(competitors)]
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", CHILD, str(root), config, str(threads), str(workers), str(warmup),
                              str(steps)], capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("bench_out/threads"))
    ap.add_argument("--configurations", nargs="+", default=["3d_fullres", "2d"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--competitors", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default ROOT/bench_threads.json)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    ensure_data(root)
    results: dict[str, list[float]] = {}
    settings = list(itertools.product(args.configurations, args.competitors, args.threads, args.workers))
    for rnd in range(args.rounds):
        for config, comp, threads, workers in (settings if rnd % 2 == 0 else settings[::-1]):
            r = measure(root, config, threads, workers, comp, args.warmup, args.steps)
            key = f"{config}|{comp}|{threads}|{workers}"
            results.setdefault(key, []).append(r["median"])
            print(f"round {rnd + 1}: {config:<10} competitors {comp}  threads {threads}  workers {workers}:  "
                  f"{r['median']:.3f} s/iteration", flush=True)
    rows = []
    for config in args.configurations:
        quiet = min(statistics.median(v) for k, v in results.items() if k.startswith(f"{config}|0|"))
        for key, v in results.items():
            c, comp, threads, workers = key.split("|")
            if c == config:
                rows.append({"configuration": c, "competitors": int(comp), "threads": int(threads),
                             "workers": int(workers), "median_s": statistics.median(v), "runs": v,
                             "vs_best_quiet": statistics.median(v) / quiet})
    print("\n| configuration | competing processes | torch threads | workers | s/iteration (median) | vs best quiet |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['configuration']} | {r['competitors']} | {r['threads']} | {r['workers']} | {r['median_s']:.3f} | "
              f"{r['vs_best_quiet']:.2f}x |")
    out = args.out or root / "bench_threads.json"
    out.write_text(json.dumps({"cores": os.cpu_count(), "steps": args.steps, "rounds": args.rounds, "rows": rows},
                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
