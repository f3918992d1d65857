#!/usr/bin/env python3
"""Plan real dataset shapes with autounet and with nnU-Net v2, from fingerprints alone.

``benchmarks/plan_profiles.json`` lists public datasets (the ten Medical Segmentation Decathlon
tasks, KiTS, AMOS, BTCV, ACDC, LiTS, BraTS) with their median shape, spacing, channels, classes
and number of training cases, and where each figure comes from. For every profile the script
builds one fingerprint (every case at the median shape and spacing) and gives it to

* autounet's planner in this process (``autoplan.profiles.plan_profile``, 8 GB target), and
* nnU-Net's default ``ExperimentPlanner`` through ``nnUNetv2_plan_experiment`` in its own
  virtualenv (8 GB default): the fingerprint is written as ``dataset_fingerprint.json`` beside a
  ``dataset.json`` and one tiny image that nnU-Net opens to pick its reader,

and writes the comparison (configurations, patch, batch, spacing, stages, side by side) into
``benchmarks/plan_comparison.md`` between the ``profiles`` markers; the rest of the file (the
example datasets of ``compare_plans.py`` and the hand-written analysis) is kept.

    python benchmarks/compare_plan_profiles.py --nnunet-venv /root/nnunet-venv
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compare_plans import REPO, _fmt, compare, from_autounet, from_nnunet, section

from autounet.autoplan.profiles import PLACEHOLDER_STATS, plan_profile

PROFILES = REPO / "benchmarks" / "plan_profiles.json"
START, END = "<!-- profiles:start -->", "<!-- profiles:end -->"
STATS = {k: v for k, v in asdict(PLACEHOLDER_STATS).items() if k != "num_samples"}  # nnU-Net's fingerprint keys


def write_nnunet_dataset(p: dict[str, Any], raw: Path, preprocessed: Path) -> str:
    """nnU-Net's raw folder (dataset.json, one 4^3 case) and fingerprint for the profile."""
    import SimpleITK as sitk

    name = f"Dataset{p['id']:03d}_{p['name']}"
    folder = raw / name
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    spacing_xyz = [float(v) for v in reversed(p["median_spacing"])]
    for c in range(len(p["channel_names"])):
        img = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32))
        img.SetSpacing(spacing_xyz)
        sitk.WriteImage(img, str(folder / "imagesTr" / f"case_0000_{c:04d}.nii.gz"))
    seg = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    seg.SetSpacing(spacing_xyz)
    sitk.WriteImage(seg, str(folder / "labelsTr" / "case_0000.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {str(i): c for i, c in enumerate(p["channel_names"])}, "labels": p["labels"],
        "numTraining": p["num_training"], "file_ending": ".nii.gz"}, indent=1))
    (preprocessed / name).mkdir(parents=True, exist_ok=True)
    n = p["num_training"]
    (preprocessed / name / "dataset_fingerprint.json").write_text(json.dumps({
        "spacings": [p["median_spacing"]] * n, "shapes_after_crop": [p["median_shape"]] * n,
        "foreground_intensity_properties_per_channel": {str(i): STATS for i in range(len(p["channel_names"]))},
        "median_relative_size_after_cropping": 1.0}))
    return name


def summary_row(p: dict[str, Any], a: dict[str, Any], n: dict[str, Any]) -> str:
    def pb(plan: dict[str, Any], config: str) -> str:
        c = plan["configs"].get(config)
        return "–" if c is None else f"{_fmt(c['patch'])} ({c['batch']})"

    cells = [p["name"], ", ".join(sorted(a["configs"])), ", ".join(sorted(n["configs"]))]
    for config in ("2d", "3d_fullres", "3d_lowres"):
        x, y = pb(a, config), pb(n, config)
        cells.append(x if x == y else f"**{x}** / **{y}**")
    same = "yes" if set(a["configs"]) == set(n["configs"]) else "**no**"
    return "| " + " | ".join(cells + [same]) + " |"


def profile_table(profiles: list[dict[str, Any]]) -> list[str]:
    rows = ["| id | profile | modality | channels | classes (incl. background) | training cases | median shape "
            "(z, y, x) | median spacing (mm) | source |", "|---|---|---|---|---|---|---|---|---|"]
    for p in profiles:
        rows.append(f"| {p['id']} | {p['name']} | {p['modality']} | {', '.join(p['channel_names'])} | "
                    f"{len(p['labels'])} | {p['num_training']} | {_fmt(tuple(p['median_shape']))} | "
                    f"{_fmt(tuple(float(v) for v in p['median_spacing']))} | {p['source']} |")
    return rows


def _profile_section(p: dict[str, Any], a: dict[str, Any], n: dict[str, Any]) -> str:
    """compare_plans' section for one profile, without its per-dataset timing line."""
    text = section(p["name"], p.get("notes", ""), a, n, {"autounet": 0.0, "nnunet": 0.0}).replace("## ", "### ", 1)
    return "\n".join(line for line in text.splitlines() if not line.startswith("- planning wall time"))


def report(profiles: list[dict[str, Any]], plans: list[tuple[dict, dict]], seconds: dict[str, float]) -> str:
    lines = [START, "## Real dataset profiles (fingerprints only)", "",
             "Generated by `python benchmarks/compare_plan_profiles.py --nnunet-venv /root/nnunet-venv` from "
             "`benchmarks/plan_profiles.json`. Each profile becomes a fingerprint whose cases all have the median "
             "shape and spacing (so the 10th-percentile rule for anisotropic axes sees no spread), planned by "
             "autounet's `plan_dataset` and by nnU-Net's `nnUNetv2_plan_experiment` (default `ExperimentPlanner`), "
             f"both for 8 GB. Planning time for all {len(profiles)} profiles: autounet {seconds['autounet']:.1f} s, "
             f"nnU-Net {seconds['nnunet']:.1f} s (one process start).", "",
             "| profile | autounet configurations | nnU-Net configurations | 2d patch (batch) | 3d_fullres patch "
             "(batch) | 3d_lowres patch (batch) | same configurations |", "|---|---|---|---|---|---|---|"]
    lines += [summary_row(p, a, n) for p, (a, n) in zip(profiles, plans)]
    lines += ["", "Cells show one value when both tools agree, else autounet / nnU-Net in bold.", "",
              "### The profiles and their sources", ""] + profile_table(profiles) + [""]
    for p, (a, n) in zip(profiles, plans):
        lines += ["<details><summary>" + p["name"] + f": {len(compare(a, n)) - 1} differing items</summary>", "",
                  _profile_section(p, a, n),
                  "</details>", ""]
    return "\n".join(lines + [END])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnunet-venv", type=Path, required=True, help="virtualenv holding nnunetv2")
    ap.add_argument("--out", type=Path, default=Path("bench_out/plan_profiles"), help="workspace for nnU-Net's files")
    ap.add_argument("--markdown", type=Path, default=REPO / "benchmarks" / "plan_comparison.md")
    args = ap.parse_args(argv)
    profiles = json.loads(PROFILES.read_text())
    out = args.out.resolve()
    raw, pre = out / "raw", out / "preprocessed"
    names = [write_nnunet_dataset(p, raw, pre) for p in profiles]
    t0 = time.perf_counter()
    ours = [from_autounet(json.loads(json.dumps(plan_profile(p).to_json()))) for p in profiles]
    seconds = {"autounet": time.perf_counter() - t0}
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(pre), nnUNet_results=str(out / "results"))
    exe = args.nnunet_venv.resolve() / "bin" / "nnUNetv2_plan_experiment"
    log = out / "nnunet_plan.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        rc = subprocess.run([str(exe), "-d", *[str(p["id"]) for p in profiles]], env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    seconds["nnunet"] = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"nnUNetv2_plan_experiment failed (rc {rc}); see {log}")
    theirs = [from_nnunet(json.loads((pre / name / "nnUNetPlans.json").read_text())) for name in names]
    text = report(profiles, list(zip(ours, theirs)), seconds)
    old = args.markdown.read_text() if args.markdown.is_file() else ""
    if START in old and END in old:
        new = old[:old.index(START)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    args.markdown.write_text(new)
    for p, a, n in zip(profiles, ours, theirs):
        print(f"{p['name']:<22} autounet {sorted(a['configs'])} nnU-Net {sorted(n['configs'])}")
    print(f"written {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
