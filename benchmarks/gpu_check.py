#!/usr/bin/env python3
"""The prepared GPU check: what autounet does on a CUDA GPU, measured in one short run.

Run it through ``benchmarks/gpu_check.sh`` (which installs what the GPU machine lacks and runs
the CUDA-marked tests first); alone: ``python benchmarks/gpu_check.py --out DIR [--isbi PATH]``.
Without a CUDA GPU it says so, writes ``{"skipped": ...}`` and exits 0.

For each dataset (the 3D example, made here; the shared 2D ISBI set from ``--isbi``, else a 2D
example) it plans for this GPU and records:
- the plan: the memory target detected, and the configuration's patch, batch and network;
- training iterations per second with the real data pipeline (augmentation workers, batches
  moved to the GPU), for float16 autocast, bfloat16 autocast, float16 with channels-last memory
  and float16 with ``torch.compile``, each after warm-up steps, with the peak GPU memory of each
  as a fraction of the card's;
- prediction seconds per case with test-time mirroring, start-up excluded ((wall of N cases -
  wall of 1) / (N - 1)), by a fold trained for a few iterations (speed only, not accuracy).
Everything fits in about 8 minutes on one large GPU (``--iterations`` and ``--cases`` bound it).
Results: ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("float16", "bfloat16", "float16 + channels-last", "float16 + torch.compile")


def _cuda_info() -> dict | None:
    """The GPU's name, memory and the torch/CUDA versions; None without a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return {"gpu": p.name, "memory_gb": round(p.total_memory / 1024**3, 1), "torch": torch.__version__,
            "cuda": torch.version.cuda, "count": torch.cuda.device_count()}


@contextlib.contextmanager
def _autocast_dtype(dtype):
    """Training steps autocast to ``dtype`` instead of float16 while the block runs."""
    import torch
    from autounet.training import steps

    original = steps.autocast_for
    steps.autocast_for = lambda device, enabled: torch.autocast("cuda", dtype=dtype)
    try:
        yield
    finally:
        steps.autocast_for = original


def _run_for(setup, config, variant: str, device):
    """A fresh run of the fold, as the variant trains it."""
    import torch
    from autounet.training.state import new_run

    run = new_run(setup, config, device)
    if "channels-last" in variant:
        fmt = torch.channels_last if len(setup.stage.patch_size) == 2 else torch.channels_last_3d
        run.module = run.module.to(memory_format=fmt)
        run.network = run.module
    if "compile" in variant:
        run.network = torch.compile(run.module)
    return run


def training_speed(setup, variant: str, iterations: int, warmup: int, device_name: str = "cuda") -> dict:
    """Iterations per second of ``variant`` after ``warmup`` steps, and its peak GPU memory."""
    import torch
    from autounet.training.batches import make_inputs
    from autounet.training.config import TrainingConfig
    from autounet.training.steps import train_epoch

    device = torch.device(device_name)
    config = TrainingConfig()
    run = _run_for(setup, config, variant, device)
    inputs = make_inputs(setup, config, device)
    batches, stop = inputs.training(0, 0)
    dtype = torch.bfloat16 if variant == "bfloat16" else torch.float16
    try:
        with _autocast_dtype(dtype):
            train_epoch(run, batches, warmup, False)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            loss = train_epoch(run, batches, iterations, False)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
    finally:
        stop()
    peak = torch.cuda.max_memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    return {"iterations_per_s": round(iterations / seconds, 2), "batch": inputs.batch, "loss": round(loss, 4),
            "peak_memory_gb": round(peak / 1024**3, 2), "peak_memory_fraction": round(peak / total, 3),
            "workers": inputs.workers}


def prediction_speed(raw: Path, root: Path, configuration: str, cases: int) -> dict:
    """Seconds per case with mirroring, start-up excluded, of a fold trained for a few iterations."""
    from autounet import api

    tiny = api.TrainingConfig(epochs=1, iterations_per_epoch=5, val_iterations_per_epoch=1, final_validation=False)
    api.train(raw, configuration, 0, root=root, config=tiny, device="cuda")
    images = sorted((raw / "imagesTs").glob("*_0000.*"))[:cases]
    one, many = root / "in_one", root / "in_many"
    for folder, files in ((one, images[:1]), (many, images)):
        folder.mkdir(exist_ok=True)
        for f in files:
            shutil.copy(f, folder / f.name)
    walls = {}
    for name, folder in (("one", one), ("many", many), ("one_again", one)):
        start = time.perf_counter()
        api.predict(folder, root / f"out_{name}", raw, configurations=[configuration], folds=["0"], root=root,
                    settings=api.PredictSettings(device="cuda", mirror=True))
        walls[name] = time.perf_counter() - start
    first = min(walls["one"], walls["one_again"])  # the first call also warms up CUDA
    n = len(images)
    return {"cases": n, "wall_one_s": round(first, 2), "wall_all_s": round(walls["many"], 2),
            "seconds_per_case": round((walls["many"] - first) / max(n - 1, 1), 3)}


def check_dataset(name: str, raw: Path, root: Path, configuration: str, args) -> dict:
    """Plan for this GPU, then the training variants and the prediction speed of one configuration."""
    from autounet import api
    from autounet.training.setup import prepare_fold
    from autounet.workspace import resolve_dataset

    plans = api.plan_and_preprocess(raw, root=root, processes=args.processes, configurations=[configuration])
    stage = plans.configurations[configuration]
    out = {"dataset": name, "configuration": configuration, "memory_target_gb": plans.memory_target_gb,
           "patch": list(stage.patch_size), "batch": stage.batch_size,
           "features": list(stage.network.features_per_stage), "variants": {}}
    setup = prepare_fold(resolve_dataset(raw, root), configuration, 0)
    for variant in VARIANTS:
        try:
            out["variants"][variant] = training_speed(setup, variant, args.iterations, args.warmup)
        except Exception as e:  # one variant failing (e.g. compile without a compiler) must not end the check
            out["variants"][variant] = {"error": f"{type(e).__name__}: {e}"[:300]}
        print(f"{name} {variant}: {out['variants'][variant]}", flush=True)
    out["prediction"] = prediction_speed(raw, root, configuration, args.cases)
    print(f"{name} prediction: {out['prediction']}", flush=True)
    return out


def _datasets(args, work: Path) -> list[tuple[str, Path, str]]:
    from autounet import api

    example = api.make_example_dataset(work / "raw" / "Dataset900_Example", dims=3, cases=20, test_cases=args.cases)
    if args.isbi is not None and args.isbi.is_dir():
        isbi = work / "raw" / args.isbi.name
        shutil.copytree(args.isbi, isbi, dirs_exist_ok=True)
        if not (isbi / "imagesTs").is_dir():  # the shared set has no test images: predict training images
            shutil.copytree(isbi / "imagesTr", isbi / "imagesTs")
        second = ("ISBI 2012 EM (2D)", isbi, "2d")
    else:
        second = ("2D example", api.make_example_dataset(work / "raw" / "Dataset901_Example2D", dims=2, cases=20,
                                                        test_cases=args.cases), "2d")
    return [("3D example", example, "3d_fullres"), second]


def _markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['gpu']['gpu']} ({report['gpu']['memory_gb']} GB), torch {report['gpu']['torch']}, "
             f"CUDA {report['gpu']['cuda']}", "", f"CUDA-marked tests: {report.get('cuda_tests', 'not run')}", ""]
    for d in report["datasets"]:
        lines += [f"## {d['dataset']}: {d['configuration']}, patch {d['patch']}, batch {d['batch']}, "
                  f"memory target {d['memory_target_gb']} GB", "",
                  "| variant | it/s | peak GPU memory (GB) | of the card |", "|---|---|---|---|"]
        for v, m in d["variants"].items():
            lines.append(f"| {v} | {m.get('iterations_per_s', m.get('error', '-'))} | {m.get('peak_memory_gb', '-')} | "
                         f"{m.get('peak_memory_fraction', '-')} |")
        p = d["prediction"]
        lines += ["", f"Prediction with mirroring: {p['seconds_per_case']} s per case without start-up "
                      f"({p['cases']} cases in {p['wall_all_s']} s, one in {p['wall_one_s']} s).", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    parser.add_argument("--isbi", type=Path, default=None, help="the shared 2D dataset's folder (Dataset901_ISBI2012EM)")
    parser.add_argument("--iterations", type=int, default=30, help="timed training iterations per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (compilation, cuDNN tuning)")
    parser.add_argument("--cases", type=int, default=4, help="cases predicted for the prediction time")
    parser.add_argument("--processes", type=int, default=8, help="preprocessing workers")
    parser.add_argument("--cuda-tests", default=None, help="the CUDA-marked tests' summary line (from gpu_check.sh)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    info = _cuda_info()
    if info is None:
        print("gpu_check: no CUDA GPU on this machine; nothing measured (skipped)")
        (args.out / "gpu_check.json").write_text(json.dumps({"skipped": "no CUDA GPU"}) + "\n")
        return 0
    started = time.perf_counter()
    report = {"gpu": info, "cuda_tests": args.cuda_tests, "datasets": []}
    work = args.out / "work"
    for name, raw, configuration in _datasets(args, work):
        report["datasets"].append(check_dataset(name, raw, work, configuration, args))
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")  # partial results survive
    report["wall_s"] = round(time.perf_counter() - started, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "gpu_check.md").write_text(_markdown(report))
    print(_markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
