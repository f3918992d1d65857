#!/usr/bin/env python3
"""Benchmark ``autounet plan_and_preprocess`` against ``nnUNetv2_plan_and_preprocess``.

Both tools run on the same 3D dataset (20 anisotropic cases of about 40 x 256 x 256 voxels,
written once by ``autounet make_example_dataset`` and cached under ``--out``), with the same
number of worker processes and the same configurations (``2d`` and ``3d_fullres``). The tools
alternate (autounet, nnU-Net, autounet, ...) for ``--repeats`` rounds; every run starts from an
empty output folder. For each run the script records

* wall time (seconds, from process start to exit),
* CPU time (user + system of the whole process tree, from ``getrusage(RUSAGE_CHILDREN)``),
* peak memory: every ~50 ms the PSS (proportional set size, ``/proc/<pid>/smaps_rollup``) of the
  tool's process and all its descendants (found by walking ``/proc/*/stat`` for parent ids) is
  summed; the maximum of these sums is the peak. PSS splits shared pages between the processes
  sharing them, so the sum is the tree's real footprint (an RSS sum would count shared libraries
  and copy-on-write pages once per worker). The peak RSS sum is recorded too, for reference.

It prints a table of every run, the medians per tool and the ratios
(nnU-Net time / autounet time, autounet peak / nnU-Net peak), and writes everything to
``OUT/bench_preprocess.json``. Without ``--nnunet-venv`` only autounet is measured.

Only the standard library and numpy are used; nnU-Net is only ever run as a subprocess from its
own virtual environment. Linux only (reads /proc).

    python benchmarks/bench_preprocess.py --nnunet-venv /root/nnunet-venv --repeats 3 -p 2
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from _common import MIB, dir_size, fresh, have_smaps_rollup, link_dir, log_tail, run_measured

DATASET_ID = 950
DATASET_NAME = "Dataset950_Bench"
CONFIGS = ("2d", "3d_fullres")


# --------------------------------------------------------------------------- running one tool

@dataclass
class RunResult:
    tool: str
    round: int
    wall_s: float
    cpu_s: float
    peak_pss_mib: float
    peak_rss_sum_mib: float
    peak_processes: int
    samples: int
    output_mib: float
    returncode: int
    planned_configurations: list[str] = field(default_factory=list)
    log: str = ""


def run_autounet(args: argparse.Namespace, raw: Path, rnd: int, env: dict[str, str]) -> RunResult:
    ws = fresh(args.out / "work" / "autounet")
    link_dir(raw, ws / "raw" / DATASET_NAME)
    cmd = [sys.executable, "-m", "autounet.cli", "plan_and_preprocess", str(DATASET_ID), "--root", str(ws),
           "-p", str(args.processes), "--force", "-c", *CONFIGS]
    log = args.out / "logs" / f"autounet_round{rnd}.log"
    rc, wall, cpu, s = run_measured(cmd, env, log, args.interval)
    pre = ws / "preprocessed" / DATASET_NAME
    planned: list[str] = []
    try:
        planned = sorted(json.loads((pre / "plans.json").read_text())["configurations"])
    except (OSError, ValueError, KeyError):
        pass
    return RunResult("autounet", rnd, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                     s.samples, dir_size(pre) / MIB, rc, planned, str(log))


def run_nnunet(args: argparse.Namespace, raw: Path, rnd: int, env: dict[str, str]) -> RunResult:
    base = fresh(args.out / "work" / "nnunet")
    nn_raw = args.out / "nnunet_raw"  # nnU-Net's raw layout: a link to the very same dataset folder
    link_dir(raw, nn_raw / DATASET_NAME)
    env = dict(env, nnUNet_raw=str(nn_raw), nnUNet_preprocessed=str(base / "preprocessed"),
               nnUNet_results=str(base / "results"))
    (base / "preprocessed").mkdir()
    (base / "results").mkdir()
    exe = args.nnunet_venv / "bin" / "nnUNetv2_plan_and_preprocess"
    cmd = [str(exe), "-d", str(DATASET_ID), "-np", str(args.processes), "-npfp", str(args.nnunet_npfp or args.processes),
           "-c", *CONFIGS]
    if args.nnunet_verify:
        cmd.append("--verify_dataset_integrity")
    log = args.out / "logs" / f"nnunet_round{rnd}.log"
    rc, wall, cpu, s = run_measured(cmd, env, log, args.interval)
    pre = base / "preprocessed" / DATASET_NAME
    planned: list[str] = []
    try:
        planned = sorted(json.loads((pre / "nnUNetPlans.json").read_text())["configurations"])
    except (OSError, ValueError, KeyError):
        pass
    return RunResult("nnunet", rnd, wall, cpu, s.peak_pss_kib / 1024, s.peak_rss_kib / 1024, s.peak_procs,
                     s.samples, dir_size(pre) / MIB, rc, planned, str(log))


# --------------------------------------------------------------------------- dataset

def ensure_dataset(args: argparse.Namespace, env: dict[str, str]) -> Path:
    """Write the benchmark dataset once; a marker written after success makes it reusable."""
    raw = (args.out / "raw" / DATASET_NAME).resolve()
    marker = args.out / "raw" / f".{DATASET_NAME}.complete"
    spec = {"dims": 3, "anisotropic": True, "cases": args.cases, "shape": args.shape, "seed": 0}
    if marker.is_file() and raw.is_dir():
        try:
            if json.loads(marker.read_text()) == spec:
                print(f"dataset: reusing {raw}")
                return raw
        except ValueError:
            pass
    if raw.exists():
        shutil.rmtree(raw)
    cmd = [sys.executable, "-m", "autounet.cli", "make_example_dataset", str(raw), "--dims", "3", "--anisotropic",
           "--cases", str(args.cases), "--shape", *map(str, args.shape), "--seed", "0"]
    print("dataset: writing", raw, "(once; cached for later runs)")
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"dataset: written in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps(spec))
    return raw


# --------------------------------------------------------------------------- report

def _median(results: list[RunResult], tool: str, key: str) -> float | None:
    vals = [getattr(r, key) for r in results if r.tool == tool and r.returncode == 0]
    return float(np.median(vals)) if vals else None


def report(results: list[RunResult], args: argparse.Namespace, notes: list[str]) -> dict:
    hdr = f"{'round':>5}  {'tool':<9} {'wall s':>8} {'cpu s':>8} {'peak PSS MiB':>13} {'peak RSS-sum MiB':>17} " \
          f"{'procs':>5} {'output MiB':>10}  planned"
    print()
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        flag = "" if r.returncode == 0 else f"  FAILED rc={r.returncode} (see {r.log})"
        print(f"{r.round:>5}  {r.tool:<9} {r.wall_s:>8.1f} {r.cpu_s:>8.1f} {r.peak_pss_mib:>13.0f} "
              f"{r.peak_rss_sum_mib:>17.0f} {r.peak_processes:>5} {r.output_mib:>10.0f}  "
              f"{','.join(r.planned_configurations)}{flag}")
    tools = sorted({r.tool for r in results})
    medians = {t: {k: _median(results, t, k) for k in ("wall_s", "cpu_s", "peak_pss_mib", "peak_rss_sum_mib",
                                                      "output_mib")} for t in tools}
    print("\nmedians")
    for t in tools:
        m = medians[t]
        fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
        print(f"  {t:<9} wall {fmt(m['wall_s'], '.1f')} s   cpu {fmt(m['cpu_s'], '.1f')} s   "
              f"peak PSS {fmt(m['peak_pss_mib'], '.0f')} MiB   peak RSS-sum {fmt(m['peak_rss_sum_mib'], '.0f')} MiB   "
              f"output {fmt(m['output_mib'], '.0f')} MiB")
    ratios = {}
    if "autounet" in medians and "nnunet" in medians:
        a, n = medians["autounet"], medians["nnunet"]
        if a["wall_s"] and n["wall_s"]:
            ratios["time_nnunet_over_autounet"] = n["wall_s"] / a["wall_s"]
            ratios["cpu_nnunet_over_autounet"] = n["cpu_s"] / a["cpu_s"] if a["cpu_s"] else None
        if a["peak_pss_mib"] and n["peak_pss_mib"]:
            ratios["peak_pss_autounet_over_nnunet"] = a["peak_pss_mib"] / n["peak_pss_mib"]
            ratios["peak_rss_sum_autounet_over_nnunet"] = a["peak_rss_sum_mib"] / n["peak_rss_sum_mib"]
        print("\nratios")
        if "time_nnunet_over_autounet" in ratios:
            print(f"  wall time  nnU-Net / autounet : {ratios['time_nnunet_over_autounet']:.2f}x")
            if ratios.get("cpu_nnunet_over_autounet"):
                print(f"  CPU time   nnU-Net / autounet : {ratios['cpu_nnunet_over_autounet']:.2f}x")
        if "peak_pss_autounet_over_nnunet" in ratios:
            print(f"  peak PSS   autounet / nnU-Net : {ratios['peak_pss_autounet_over_nnunet']:.2f}")
            print(f"  (RSS sum   autounet / nnU-Net : {ratios['peak_rss_sum_autounet_over_nnunet']:.2f})")
    for n_ in notes:
        print("note:", n_)
    return {"medians": medians, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder (default ./bench_out)")
    ap.add_argument("--nnunet-venv", type=Path, default=None,
                    help="virtualenv holding nnunetv2 (its bin/nnUNetv2_plan_and_preprocess); omit to time autounet only")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each round runs every tool once (default 3)")
    ap.add_argument("-p", "--processes", type=int, default=2, help="worker processes for both tools (default 2)")
    ap.add_argument("--nnunet-npfp", type=int, default=None,
                    help="nnU-Net fingerprint processes (-npfp; default: the same as -p; nnU-Net's own default is 8)")
    ap.add_argument("--nnunet-verify", action="store_true",
                    help="add --verify_dataset_integrity to nnU-Net (autounet always verifies every case)")
    ap.add_argument("--cases", type=int, default=20, help="training cases of the benchmark dataset (default 20)")
    ap.add_argument("--shape", type=int, nargs=3, default=[40, 256, 256], help="case shape Z Y X (default 40 256 256)")
    ap.add_argument("--interval", type=float, default=0.05, help="memory sampling interval in seconds (default 0.05)")
    ap.add_argument("--keep", action="store_true", help="keep the last run's preprocessed output under OUT/work")
    args = ap.parse_args(argv)
    if not have_smaps_rollup():
        ap.error("needs Linux >= 4.14 (/proc/<pid>/smaps_rollup)")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.nnunet_venv is not None:
        args.nnunet_venv = args.nnunet_venv.resolve()
        if not (args.nnunet_venv / "bin" / "nnUNetv2_plan_and_preprocess").is_file():
            ap.error(f"{args.nnunet_venv}/bin/nnUNetv2_plan_and_preprocess not found")

    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    raw = ensure_dataset(args, env)

    tools = [("autounet", run_autounet)]
    if args.nnunet_venv is not None:
        tools.append(("nnunet", run_nnunet))
    print(f"benchmark: {args.repeats} round(s) x {[t for t, _ in tools]}, -p {args.processes}, "
          f"configurations {' '.join(CONFIGS)}, {os.cpu_count()} cores; logs in {args.out / 'logs'}")
    results: list[RunResult] = []
    for rnd in range(1, args.repeats + 1):
        for name, fn in tools:
            os.sync()  # start every run with no dirty pages of the previous one pending
            r = fn(args, raw, rnd, env)
            results.append(r)
            status = "ok" if r.returncode == 0 else f"FAILED rc={r.returncode}"
            print(f"  round {rnd} {name:<9} {r.wall_s:7.1f} s  peak PSS {r.peak_pss_mib:7.0f} MiB  {status}", flush=True)
            if r.returncode != 0:
                print(log_tail(Path(r.log)), file=sys.stderr)
            if not args.keep:
                shutil.rmtree(args.out / "work" / name, ignore_errors=True)

    notes = []
    a_cfg = next((r.planned_configurations for r in results if r.tool == "autounet" and r.returncode == 0), [])
    n_cfg = next((r.planned_configurations for r in results if r.tool == "nnunet" and r.returncode == 0), [])
    notes.append(f"both tools preprocess {' + '.join(CONFIGS)} (-c); autounet planned {a_cfg or '?'}"
                 + (f", nnU-Net planned {n_cfg}" if n_cfg else ""))
    if "3d_lowres" in n_cfg:
        notes.append("nnU-Net planned 3d_lowres for this data (not preprocessed here: -c 2d 3d_fullres)")
    elif args.nnunet_venv is not None:
        dropped = [ln for r in results if r.tool == "nnunet"
                   for ln in Path(r.log).read_text(errors="replace").splitlines() if "Dropping 3d_lowres" in ln]
        if dropped:
            notes.append("nnU-Net did not plan 3d_lowres: " + dropped[0].strip())
    if "3d_lowres" in a_cfg:
        notes.append("autounet planned 3d_lowres for this data (not preprocessed here: -c 2d 3d_fullres)")
    if args.nnunet_venv is not None:
        notes.append(f"nnU-Net ran with -np {args.processes} -npfp {args.nnunet_npfp or args.processes}"
                     + (" --verify_dataset_integrity" if args.nnunet_verify else " (no --verify_dataset_integrity;"
                        " autounet always verifies)"))
    summary = report(results, args, notes)

    out = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "dataset": {"name": DATASET_NAME, "path": str(raw), "cases": args.cases, "shape": args.shape,
                    "anisotropic": True},
        "processes": args.processes,
        "configurations": list(CONFIGS),
        "repeats": args.repeats,
        "sampling_interval_s": args.interval,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": [asdict(r) for r in results],
        **summary,
        "notes": notes,
    }
    path = args.out / "bench_preprocess.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten {path}")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
