"""Case-level classification: autounet against a plain ResNet-18 on PneumoniaMNIST (dev subset).

Data: ``../shared/datasets/classification/pneumoniamnist_dev.npz`` (2,428 training and 270 validation
28x28 chest X-rays, balanced; 0 normal, 1 pneumonia). Both methods get the same wall-clock budget
(``--budget``, default 15m) and are scored on the validation split, which neither sees while training.

1. ``baseline``: ResNet-18 from scratch in the MedMNIST recipe for 28x28 inputs (BasicBlock [2,2,2,2],
   64-128-256-512, 3x3 stride-1 stem, no max-pool; Adam 1e-3, batch 128, cross-entropy, no augmentation),
   trained on the training split for as many whole epochs as fit the budget, with MedMNIST's schedule
   (x0.1 at 50% and 75% of the epochs) scaled to the epochs that fit, fixed after the first epoch.
   The final model is scored (choosing an epoch on the validation split would peek at it).
2. ``autounet``: ``convert_medmnist``, ``run --time-budget``, ``predict`` and ``evaluate`` as
   subprocesses in a fresh workspace ``OUT/autounet_ws`` (logs in ``OUT/logs/``); the validation AUC/ACC
   of ``evaluate`` are recomputed here from ``predictions.csv`` as a cross-check, and the cross-validated
   figures are read from the dataset's results folder (``_cv_figures``).

Writes ``OUT/results.json`` and ``OUT/results.md``. Run on a quiet machine (``uptime`` is printed first).

    python benchmarks/bench_classification.py --out bench_out/classification --budget 15m
    python benchmarks/bench_classification.py --out /tmp/cls_smoke --budget 20s --which baseline
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
NPZ = (REPO.parent / "shared" / "datasets" / "classification" / "pneumoniamnist_dev.npz").resolve()
DATASET_ID, DATASET = "950", "Dataset950_PneumoniaDev"
CLASS_NAMES = ("normal", "pneumonia")


# --------------------------------------------------------------------------- helpers

def parse_budget(text: str) -> float:
    """"15m", "900s", "1h", "1h30m", "2min" -> seconds (a unit is required)."""
    t = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|min|m|s)", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise argparse.ArgumentTypeError(f"budget {text!r} not understood: write e.g. 15m, 900s, 1h")
    return sum(float(v) * {"h": 3600, "min": 60, "m": 60, "s": 1}[u] for v, u in parts)


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of binary ``labels`` (1 positive) by the Mann-Whitney rank sum, ties given mean ranks."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def load_split(npz: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``train`` or ``val``."""
    with np.load(npz) as d:
        return d[f"{split}_images"], d[f"{split}_labels"].reshape(-1).astype(np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """MedMNIST's normalisation: pixel/255, then (x - 0.5) / 0.5; shape (N, 1, 28, 28)."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - 0.5) / 0.5


def load_line() -> dict:
    """The machine load now (1/5/15-minute averages) and the core count."""
    one, five, fifteen = os.getloadavg()
    return {"load1": round(one, 2), "load5": round(five, 2), "load15": round(fifteen, 2), "cpus": os.cpu_count()}


# --------------------------------------------------------------------------- baseline: ResNet-18 (MedMNIST)

class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """MedMNIST's ResNet-18 for 28x28: 3x3 stride-1 stem, no max-pool, [2,2,2,2] blocks, GAP, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1))


def _train_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 batch: int, gen: torch.Generator) -> float:
    """One shuffled pass over (x, y); returns the mean training loss."""
    model.train()
    perm, total = torch.randperm(len(x), generator=gen), 0.0
    for start in range(0, len(x), batch):
        idx = perm[start:start + batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(x)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (N, classes) in eval mode."""
    model.eval()
    return torch.cat([F.softmax(model(x[i:i + batch]), 1) for i in range(0, len(x), batch)]).numpy()


def run_baseline(npz: Path, budget_s: float, seed: int, batch: int = 128, lr: float = 1e-3) -> dict:
    """Train ResNet-18 for the whole epochs that fit ``budget_s``; score the final model on val."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    (xtr, ytr), (xva, yva) = load_split(npz, "train"), load_split(npz, "val")
    x, y = to_tensor(xtr), torch.from_numpy(ytr)
    model, gen = ResNet18(1, 2), torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # milestones unknown until the first epoch is timed: none until then (MultiStepLR reads them each step)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[], gamma=0.1)
    planned, milestones, losses, times = None, None, [], []
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        losses.append(_train_epoch(model, opt, x, y, batch, gen))
        times.append(time.perf_counter() - t0)
        if planned is None:  # the epochs that fit are known now: fix MedMNIST's milestones (50%, 75%)
            planned = max(1, int(budget_s // times[0]))
            milestones = [max(1, int(0.5 * planned)), max(1, int(0.75 * planned))]
            sched.milestones = Counter(milestones)
        sched.step()
        elapsed = time.perf_counter() - started
        print(f"  epoch {len(times)}: loss {losses[-1]:.4f}, {times[-1]:.1f} s, "
              f"next lr {opt.param_groups[0]['lr']:.0e}, {elapsed:.0f}/{budget_s:.0f} s", flush=True)
        if elapsed + elapsed / len(times) > budget_s:
            break
    train_s = time.perf_counter() - started
    probs = predict_proba(model, to_tensor(xva))
    return {"method": "ResNet-18 (MedMNIST recipe, final model)", "epochs": len(times), "planned_epochs": planned,
            "milestones": milestones, "train_wall_s": round(train_s, 1),
            "wall_s": round(time.perf_counter() - started, 1), "s_per_epoch": round(train_s / len(times), 2),
            "first_epoch_s": round(times[0], 2), "final_train_loss": round(losses[-1], 4),
            "val_auc": round(rank_auc(yva, probs[:, 1]), 4),
            "val_acc": round(float((probs.argmax(1) == yva).mean()), 4), "seed": seed, "batch": batch, "lr": lr}


# --------------------------------------------------------------------------- autounet

def _autounet(*args: str) -> list[str]:
    return [sys.executable, "-m", "autounet", *args]


def _accepts_root(command: str, env: dict) -> bool:
    """Whether ``autounet COMMAND`` takes ``--root`` (read from its --help)."""
    proc = subprocess.run(_autounet(command, "--help"), env=env, capture_output=True, text=True)
    return proc.returncode == 0 and "--root" in proc.stdout


def _tee(command: list[str], env: dict, log: Path) -> tuple[int, float]:
    """Run ``command`` with its stdout/stderr copied to the console and to ``log``; (exit code, wall s)."""
    started = time.perf_counter()
    with open(log, "w") as out:
        out.write(" ".join(command) + "\n\n")
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        code = proc.wait()
    return code, time.perf_counter() - started


def _cv_figures(results_dir: Path) -> dict:
    """The cross-validated figures of the chosen model, from ``cross_validation.json`` (entries ->
    the best entry -> its metrics over every training case, each predicted by the fold that did not
    train on it)."""
    path = results_dir / "cross_validation.json"
    if not path.is_file():
        return {}
    cv = json.loads(path.read_text())
    entry = cv["entries"][cv["best"]]
    m = entry["metrics"]
    return {"cv_auc": m["auc"], "cv_acc": m["accuracy"], "cv_balanced_accuracy": m["balanced_accuracy"],
            "configuration": cv["best"], "mirror": entry["mirror"], "folds": len(entry["folds"]),
            "source": path.name}


def _check_predictions(csv_path: Path, npz: Path) -> dict:
    """AUC/ACC recomputed from ``predictions.csv`` (case,label,prob_normal,prob_pneumonia; cases
    ``val_00000``... in the npz's order) against the npz's validation labels."""
    _, yva = load_split(npz, "val")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    idx = np.array([int(r["case"].rsplit("_", 1)[1]) for r in rows])
    prob = np.array([float(r["prob_pneumonia"]) for r in rows])
    probs2 = np.stack([np.array([float(r["prob_normal"]) for r in rows]), prob], 1)
    names = {n: i for i, n in enumerate(CLASS_NAMES)}
    pred = np.array([names[r["label"]] if r["label"] in names else int(float(r["label"])) for r in rows])
    truth = yva[idx]
    return {"cases": len(rows), "all_val_cases": sorted(idx.tolist()) == list(range(len(yva))),
            "auc": round(rank_auc(truth, prob), 4), "acc_label": round(float((pred == truth).mean()), 4),
            "acc_argmax": round(float((probs2.argmax(1) == truth).mean()), 4)}


def run_autounet(npz: Path, out: Path, budget: str) -> dict:
    """convert_medmnist, run, predict, evaluate in a fresh workspace; times, figures and cross-check."""
    root = out / "autounet_ws"
    shutil.rmtree(root, ignore_errors=True)
    (root / "raw").mkdir(parents=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    raw = root / "raw" / DATASET
    env = dict(os.environ, AUTOUNET_ROOT=str(root), AUTOUNET_CACHE=str(root / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    steps = [("convert_medmnist", [str(npz), str(raw), "--holdout", "val", "--class-names", *CLASS_NAMES]),
             ("run", [DATASET_ID, "--time-budget", budget]),
             ("predict", ["-i", str(raw / "imagesTs"), "-o", str(out / "predictions.csv"), "-d", DATASET_ID]),
             ("evaluate", ["-r", str(raw / "labelsTs.csv"), "--prediction", str(out / "predictions.csv"),
                           "-o", str(out / "evaluation.json")])]
    row: dict = {"method": "autounet run (case-level classification)", "steps": {}, "workspace": str(root)}
    started = time.perf_counter()
    for name, args in steps:
        extra = ["--root", str(root)] if _accepts_root(name, env) else []
        print(f"\n=== autounet {name} (load {load_line()['load1']})", flush=True)
        code, wall = _tee(_autounet(name, *args, *extra), env, out / "logs" / f"autounet_{name}.log")
        row["steps"][name] = {"exit_code": code, "wall_s": round(wall, 1)}
        if code != 0:
            row["failed_at"] = name
            break
    row["wall_s"] = round(time.perf_counter() - started, 1)
    row.update(_autounet_figures(out, root, npz))
    return row


def _autounet_figures(out: Path, root: Path, npz: Path) -> dict:
    """Validation figures from evaluation.json, the cross-check, and the CV figures (whatever exists)."""
    figures: dict = {}
    if (out / "evaluation.json").exists():
        ev = json.loads((out / "evaluation.json").read_text())
        figures.update(val_auc=ev.get("auc"), val_acc=ev.get("accuracy"), val_balanced_acc=ev.get("balanced_accuracy"))
    if (out / "predictions.csv").exists():
        try:
            figures["crosscheck"] = check = _check_predictions(out / "predictions.csv", npz)
            if figures.get("val_auc") is not None:
                figures["crosscheck_agrees"] = (abs(check["auc"] - figures["val_auc"]) < 1e-3
                                                and abs(check["acc_label"] - figures["val_acc"]) < 1e-3)
        except (KeyError, ValueError, IndexError) as e:
            figures["crosscheck_error"] = repr(e)
    figures.update(_cv_figures(root / "results" / DATASET))
    return figures


# --------------------------------------------------------------------------- report

def _fmt(value: object, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_report(out: Path, report: dict) -> None:
    """``results.json`` and ``results.md`` (table + load before each part)."""
    (out / "results.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Classification: {DATASET} ({NPZ.name}), budget {report['budget']}", "",
             "| method | wall s | epochs/folds | val AUC | val ACC | 5-fold CV AUC | CV ACC |",
             "|---|---|---|---|---|---|---|"]
    for key, r in report["parts"].items():
        count = f"{r['epochs']} epoch(s)" if key == "baseline" else f"{_fmt(r.get('folds'))} folds"
        lines.append(f"| {r['method']} | {_fmt(r.get('wall_s'), 1)} | {count} | {_fmt(r.get('val_auc'))} | "
                     f"{_fmt(r.get('val_acc'))} | {_fmt(r.get('cv_auc'))} | {_fmt(r.get('cv_acc'))} |")
    lines += ["", "Machine load before each part (1/5/15-minute averages):", ""]
    lines += [f"- {k}: {v['load1']} / {v['load5']} / {v['load15']} on {v['cpus']} cores"
              for k, v in report["load_before"].items()]
    if "baseline" in report["parts"]:
        b = report["parts"]["baseline"]
        lines.append(f"\nBaseline: {b['s_per_epoch']} s/epoch, LR milestones {b['milestones']} "
                     f"(planned {b['planned_epochs']} epochs after the first), final model.")
    if "crosscheck" in report["parts"].get("autounet", {}):
        lines.append(f"\nautounet cross-check from predictions.csv: {report['parts']['autounet']['crosscheck']}")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "classification")
    parser.add_argument("--budget", default="15m", help="wall-clock budget per method: 15m, 900s, 1h")
    parser.add_argument("--which", nargs="+", default=["baseline", "autounet"], choices=["baseline", "autounet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npz", type=Path, default=NPZ)
    args = parser.parse_args()
    budget_s = parse_budget(args.budget)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    report = {"budget": args.budget, "budget_s": budget_s, "npz": str(args.npz), "torch": torch.__version__,
              "threads": os.cpu_count(), "load_before": {}, "parts": {}}
    for part in [p for p in ("baseline", "autounet") if p in args.which]:
        report["load_before"][part] = load_line()
        print(f"\n### {part} (load before: {report['load_before'][part]})", flush=True)
        if part == "baseline":
            report["parts"][part] = run_baseline(args.npz.resolve(), budget_s, args.seed)
        else:
            report["parts"][part] = run_autounet(args.npz.resolve(), out, args.budget)
        print(json.dumps(report["parts"][part]), flush=True)
        write_report(out, report)


if __name__ == "__main__":
    main()
