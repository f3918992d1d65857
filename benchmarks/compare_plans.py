#!/usr/bin/env python3
"""Plan the same datasets with autounet and with nnU-Net v2 and compare the plans side by side.

For every dataset the script runs

* ``autounet plan_and_preprocess ID --plan-only --force --gpu-memory-gb 8`` (fingerprint + plans.json; 8 GB,
  nnU-Net's default, instead of the target autounet would detect on this machine), and
* ``nnUNetv2_plan_and_preprocess -d ID --no_pp --clean`` from nnU-Net's own virtualenv
  (fingerprint + nnUNetPlans.json; nnU-Net reads the very same raw folder: the workspace's
  ``raw/`` is also ``nnUNet_raw``),

then writes a markdown report (default ``benchmarks/plan_comparison.md``) with one section per
dataset: a table with one row per configuration and tool (configurations, patch size, batch
size, target spacing, median shape, number of stages, features, kernel sizes, strides,
normalization, batch dice) and the differences found.

Datasets (ids are distinct, folder names follow nnU-Net's ``DatasetXXX_Name``):

  961 CmpAniso2ch   autounet make_example_dataset --dims 3 --channels 2 --anisotropic --cases 20
  962 CmpIso        autounet make_example_dataset --dims 3 --cases 20
  963 CmpGray2D     autounet make_example_dataset --dims 2 --cases 20           (grayscale PNG)
  964 CmpRGB2D      autounet make_example_dataset --dims 2 --channels 3 --cases 20 (RGB PNG)
  901 ISBI2012EM    a copy of /work/shared/datasets/Dataset901_ISBI2012EM (real EM data, PNG)
  966 CmpBenchShape extra: --dims 3 --anisotropic --cases 20 --shape 40 256 256 (bench_preprocess.py's data)

An existing report's hand-written analysis (everything below the ANALYSIS_MARKER line) is kept.

Generated datasets are cached in the workspace (``--out``, default ``./bench_out/plan_compare``).
Only the standard library and numpy; autounet never imports nnunetv2.

    python benchmarks/compare_plans.py --nnunet-venv /root/nnunet-venv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_ISBI = REPO.parent / "shared" / "datasets" / "Dataset901_ISBI2012EM"

# (folder name, description, make_example_dataset arguments or None for a copied dataset)
DATASETS: list[tuple[str, str, list[str] | None]] = [
    ("Dataset961_CmpAniso2ch", "(a) synthetic 3D, 2 channels, anisotropic (3 x 0.8 x 0.8 mm), default shape",
     ["--dims", "3", "--channels", "2", "--anisotropic", "--cases", "20"]),
    ("Dataset962_CmpIso", "(b) synthetic 3D, 1 channel, isotropic (~1 mm), default shape",
     ["--dims", "3", "--cases", "20"]),
    ("Dataset963_CmpGray2D", "(c) synthetic 2D grayscale PNG", ["--dims", "2", "--cases", "20"]),
    ("Dataset964_CmpRGB2D", "(d) synthetic 2D RGB PNG", ["--dims", "2", "--channels", "3", "--cases", "20"]),
    ("Dataset901_ISBI2012EM", "(e) real: ISBI 2012 EM membrane segmentation, 30 PNG sections of 512 x 512", None),
    ("Dataset966_CmpBenchShape", "(f) extra: the shape of bench_preprocess.py's dataset (3D, anisotropic, "
     "40 x 256 x 256)", ["--dims", "3", "--anisotropic", "--cases", "20", "--shape", "40", "256", "256"]),
]
ANALYSIS_MARKER = "<!-- analysis: everything below this line is hand-written and kept when the script re-runs -->"

NNUNET_NORM = {"ZScoreNormalization": "zscore", "CTNormalization": "ct", "NoNormalization": "noNorm",
               "RescaleTo01Normalization": "rescale_to_0_1", "RGBTo01Normalization": "rgb_to_0_1"}


# --------------------------------------------------------------------------- running

def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        f.write((" ".join(cmd) + "\n\n").encode())
        f.flush()
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    dt = time.perf_counter() - t0
    if rc != 0:
        tail = [ln for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()][-25:]
        raise RuntimeError(f"{cmd[0]} failed (rc {rc}), log {log}:\n" + "\n".join(tail))
    return dt


def ensure_dataset(name: str, make_args: list[str] | None, raw_root: Path, env: dict[str, str],
                   isbi_source: Path) -> Path:
    """Write (or copy) a dataset once; a marker beside it records how it was made."""
    out = raw_root / name
    marker = raw_root / f".{name}.complete"
    spec = json.dumps(make_args if make_args is not None else ["copy", str(isbi_source)])
    if out.is_dir() and marker.is_file() and marker.read_text() == spec:
        return out
    if out.exists():
        shutil.rmtree(out)
    raw_root.mkdir(parents=True, exist_ok=True)
    if make_args is None:
        shutil.copytree(isbi_source, out)  # a copy: the shared dataset is never touched
    else:
        subprocess.run([sys.executable, "-m", "autounet.cli", "make_example_dataset", str(out), *make_args],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker.write_text(spec)
    return out


def dataset_id(name: str) -> int:
    return int(name.split("_")[0][len("Dataset"):])


# --------------------------------------------------------------------------- normalising the two plan formats

def _inherit(configs: dict[str, Any], name: str) -> dict[str, Any]:
    c = configs[name]
    if "inherits_from" in c:
        base = _inherit(configs, c["inherits_from"])
        merged = {**base, **{k: v for k, v in c.items() if k != "inherits_from"}}
        if "architecture" in c and "architecture" in base:
            merged["architecture"] = {**base["architecture"], **c["architecture"],
                                      "arch_kwargs": {**base["architecture"].get("arch_kwargs", {}),
                                                      **c["architecture"].get("arch_kwargs", {})}}
        return merged
    return c


def _tup(x: Any) -> Any:
    return tuple(_tup(v) for v in x) if isinstance(x, (list, tuple)) else x


def _norm_list(schemes: list[str], masks: list[bool]) -> tuple[str, ...]:
    return tuple(f"{s}{' (mask)' if m else ''}" for s, m in zip(schemes, masks))


def from_nnunet(plans: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"transpose": _tup(plans.get("transpose_forward")),
                           "median_spacing": _tup(plans.get("original_median_spacing_after_transp")),
                           "median_shape": _tup(plans.get("original_median_shape_after_transp")),
                           "configs": {}}
    for name in plans["configurations"]:
        c = _inherit(plans["configurations"], name)
        arch = c.get("architecture", {}).get("arch_kwargs", {})
        out["configs"][name] = {
            "patch": _tup(c["patch_size"]),
            "batch": c["batch_size"],
            "spacing": _tup(c["spacing"]),
            "median_shape": _tup([int(round(v)) for v in c["median_image_size_in_voxels"]]),
            "stages": arch.get("n_stages"),
            "features": _tup(arch.get("features_per_stage")),
            "kernels": _tup(arch.get("kernel_sizes")),
            "strides": _tup(arch.get("strides")),
            "convs_enc": _tup(arch.get("n_conv_per_stage") or arch.get("n_blocks_per_stage")),
            "norm": _norm_list([NNUNET_NORM.get(s, s) for s in c["normalization_schemes"]], c["use_mask_for_norm"]),
            "batch_dice": c.get("batch_dice"),
            "previous_stage": c.get("previous_stage"),
        }
    return out


def from_autounet(plans: dict[str, Any]) -> dict[str, Any]:
    norm = _norm_list([n["scheme"] for n in plans["normalization"]], [n["use_nonzero_mask"] for n in plans["normalization"]])
    tr = plans["transpose_forward"]
    out: dict[str, Any] = {"transpose": _tup(tr),
                           "median_spacing": tuple(plans["original_median_spacing"][t] for t in tr),
                           "median_shape": tuple(plans["original_median_shape"][t] for t in tr),
                           "configs": {}}
    for name, c in plans["configurations"].items():
        net = c["network"]
        dims = net["dims"]
        out["configs"][name] = {
            "patch": _tup(c["patch_size"]),
            "batch": c["batch_size"],
            "spacing": _tup(c["spacing"][-dims:]),
            "median_shape": _tup(c["median_shape"][-dims:]),
            "stages": len(net["features_per_stage"]),
            "features": _tup(net["features_per_stage"]),
            "kernels": _tup(net["kernel_sizes"]),
            "strides": _tup(net["strides"]),
            "convs_enc": _tup(net["convs_per_stage_encoder"]),
            "norm": norm,
            "batch_dice": c.get("batch_dice"),
            "previous_stage": c.get("previous_stage"),
            "est_gb": c.get("estimated_memory_gb"),
        }
    return out


# --------------------------------------------------------------------------- markdown

def _fmt(v: Any, key: str = "") -> str:
    """One cell: floats to 4 digits, shapes as a x b x c, features as a-b-c, per-stage lists with
    runs of equal entries compressed (``3x3 ×5``)."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if not isinstance(v, tuple):
        return str(v)
    if v and all(isinstance(x, tuple) for x in v):
        parts, i = [], 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[j + 1] == v[i]:
                j += 1
            cell = "x".join(str(x) for x in v[i]) if v[i] else "()"
            parts.append(cell if j == i else f"{cell} ×{j - i + 1}")
            i = j + 1
        return ", ".join(parts)
    if v and all(isinstance(x, str) for x in v):
        return ", ".join(v)
    sep = "-" if key in ("features", "convs_enc") else " x "
    return sep.join(_fmt(x) for x in v)


COLUMNS = [("patch", "patch"), ("batch", "batch"), ("spacing", "target spacing"), ("median_shape", "median shape"),
           ("stages", "stages"), ("features", "features"), ("kernels", "kernels"), ("strides", "strides"),
           ("norm", "normalization"), ("batch_dice", "batch dice")]


def _same(key: str, a: Any, b: Any) -> bool:
    if key == "spacing" and a is not None and b is not None:
        return len(a) == len(b) and all(abs(x - y) <= 1e-3 * max(abs(x), abs(y), 1e-9) for x, y in zip(a, b))
    return a == b


def compare(a: dict[str, Any], n: dict[str, Any]) -> list[str]:
    diffs = []
    ca, cn = set(a["configs"]), set(n["configs"])
    if ca != cn:
        diffs.append(f"configurations differ: autounet {sorted(ca)}, nnU-Net {sorted(cn)}"
                     + (f" (only autounet: {sorted(ca - cn)})" if ca - cn else "")
                     + (f" (only nnU-Net: {sorted(cn - ca)})" if cn - ca else ""))
    lowres_a, lowres_n = "3d_lowres" in ca, "3d_lowres" in cn
    diffs.append(f"3d_lowres planned: autounet {'yes' if lowres_a else 'no'}, nnU-Net {'yes' if lowres_n else 'no'}"
                 + ("" if lowres_a == lowres_n else "  **(differs)**"))
    if a["transpose"] != n["transpose"]:
        diffs.append(f"axis order (transpose_forward) differs: autounet {a['transpose']}, nnU-Net {n['transpose']}")
    for name in sorted(ca & cn):
        x, y = a["configs"][name], n["configs"][name]
        for key, label in COLUMNS + [("convs_enc", "convs per encoder stage"), ("previous_stage", "previous stage")]:
            if not _same(key, x[key], y[key]):
                diffs.append(f"`{name}` {label}: autounet {_fmt(x[key], key)} vs nnU-Net {_fmt(y[key], key)}")
    return diffs


def section(title: str, desc: str, a: dict[str, Any], n: dict[str, Any], times: dict[str, float]) -> str:
    lines = [f"## {title}", "", desc, ""]
    lines.append(f"- median spacing (transposed): autounet {_fmt(a['median_spacing'])}, nnU-Net "
                 f"{_fmt(n['median_spacing'])}; median shape: autounet {_fmt(a['median_shape'])}, nnU-Net "
                 f"{_fmt(n['median_shape'])}; transpose: autounet {a['transpose']}, nnU-Net {n['transpose']}")
    lines.append(f"- planning wall time (fingerprint + plan, one run, noisy 2-core machine): autounet "
                 f"{times['autounet']:.1f} s, nnU-Net {times['nnunet']:.1f} s")
    lines.append("")
    lines.append("| config | tool | " + " | ".join(lbl for _, lbl in COLUMNS) + " |")
    lines.append("|" + "---|" * (len(COLUMNS) + 2))
    order = ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"]
    names = sorted(set(a["configs"]) | set(n["configs"]), key=lambda k: (order.index(k) if k in order else 99, k))
    for name in names:
        for tool, p in (("autounet", a), ("nnU-Net", n)):
            c = p["configs"].get(name)
            if c is None:
                lines.append(f"| {name} | {tool} | " + " | ".join(["*not planned*"] + [""] * (len(COLUMNS) - 1)) + " |")
                continue
            cells = []
            for key, _ in COLUMNS:
                other = (n if tool == "autounet" else a)["configs"].get(name)
                s = _fmt(c[key], key)
                if other is not None and not _same(key, c[key], other[key]):
                    s = f"**{s}**"
                cells.append(s)
            lines.append(f"| {name} | {tool} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Differences (bold cells above):")
    lines.append("")
    lines.extend(f"- {d}" for d in compare(a, n))
    est = {k: c.get("est_gb") for k, c in a["configs"].items() if c.get("est_gb") is not None}
    if est:
        lines.append(f"- autounet's estimated training memory (GB): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in est.items()))
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnunet-venv", type=Path, required=True, help="virtualenv holding nnunetv2")
    ap.add_argument("--out", type=Path, default=Path("bench_out/plan_compare"),
                    help="workspace for datasets and plans (default ./bench_out/plan_compare)")
    ap.add_argument("--markdown", type=Path, default=REPO / "benchmarks" / "plan_comparison.md",
                    help="report to write (default benchmarks/plan_comparison.md)")
    ap.add_argument("-p", "--processes", type=int, default=2, help="processes for both tools (default 2)")
    ap.add_argument("--isbi", type=Path, default=DEFAULT_SHARED_ISBI, help="the ISBI 2012 EM dataset to copy")
    ap.add_argument("--only", nargs="+", default=None, help="only these dataset folder names or ids")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    venv = args.nnunet_venv.resolve()
    exe = venv / "bin" / "nnUNetv2_plan_and_preprocess"
    if not exe.is_file():
        ap.error(f"{exe} not found")
    raw = out / "raw"  # autounet's workspace raw/ and nnU-Net's nnUNet_raw at once
    env = dict(os.environ)
    env.pop("AUTOUNET_ROOT", None)
    nn_env = dict(env, nnUNet_raw=str(raw), nnUNet_preprocessed=str(out / "nnunet_preprocessed"),
                  nnUNet_results=str(out / "nnunet_results"))
    (out / "nnunet_preprocessed").mkdir(parents=True, exist_ok=True)
    (out / "nnunet_results").mkdir(parents=True, exist_ok=True)

    sections = []
    summary_rows = []
    for name, desc, make_args in DATASETS:
        did = dataset_id(name)
        if args.only and name not in args.only and str(did) not in args.only:
            continue
        print(f"{name}: dataset", flush=True)
        ensure_dataset(name, make_args, raw, env, args.isbi)
        how = ("`autounet make_example_dataset raw/" + name + " " + " ".join(make_args) + "`") if make_args else \
            f"copy of `{args.isbi}`"
        times = {}
        print(f"{name}: autounet plan", flush=True)
        times["autounet"] = _run([sys.executable, "-m", "autounet.cli", "plan_and_preprocess", str(did), "--root",
                                  str(out), "--plan-only", "--force", "-p", str(args.processes),
                                  "--gpu-memory-gb", "8"], env,
                                 out / "logs" / f"{name}_autounet.log")
        print(f"{name}: nnU-Net plan", flush=True)
        times["nnunet"] = _run([str(exe), "-d", str(did), "--no_pp", "--clean", "-npfp", str(args.processes)], nn_env,
                               out / "logs" / f"{name}_nnunet.log")
        a = from_autounet(json.loads((out / "preprocessed" / name / "plans.json").read_text()))
        n = from_nnunet(json.loads((out / "nnunet_preprocessed" / name / "nnUNetPlans.json").read_text()))
        sections.append(section(name, f"{desc}; {how}.", a, n, times))
        diffs = [d for d in compare(a, n) if not d.startswith("3d_lowres planned")]
        summary_rows.append(f"| {name} | {', '.join(sorted(a['configs']))} | {', '.join(sorted(n['configs']))} | "
                            f"{'yes' if '3d_lowres' in a['configs'] else 'no'} / "
                            f"{'yes' if '3d_lowres' in n['configs'] else 'no'} | {len(diffs)} |")

    header = [
        "# Plan comparison: autounet vs nnU-Net v2",
        "",
        "Generated by `python benchmarks/compare_plans.py --nnunet-venv /root/nnunet-venv` "
        f"(autounet `plan_and_preprocess --plan-only`, nnU-Net `nnUNetv2_plan_and_preprocess --no_pp`, "
        "default planner `ExperimentPlanner` / `nnUNetPlans`, both planning for their 8 GB default). "
        "Spacings, shapes, patches, kernels and strides are in each tool's transposed axis order "
        "(coarsest axis first for 3D); `2d` rows show the in-plane axes only. Kernel and stride lists "
        "are per stage, finest first; `×n` repeats an entry. Bold: differs from the other tool.",
        "",
        "| dataset | autounet configurations | nnU-Net configurations | 3d_lowres (autounet / nnU-Net) | differing items |",
        "|---|---|---|---|---|",
        *summary_rows,
        "",
    ]
    kept = ""
    if args.markdown.is_file():
        old = args.markdown.read_text()
        if ANALYSIS_MARKER in old:
            kept = old[old.index(ANALYSIS_MARKER):]
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text("\n".join(header + sections) + ("\n" + kept if kept else ""))
    print(f"written {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
