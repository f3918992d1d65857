"""Behaviour unchanged by a restructuring: run a 2D segmentation (`autounet run`), a 3D
segmentation with a cascade (and ONNX Runtime prediction) and each case-level task under a fixed
schedule, and write digests of the weights, validation outputs, predictions and selection files;
``--compare A B`` lists what differs between two such captures.

    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/old/checkout python benchmarks/equivalence.py OUT_OLD
    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/new/checkout python benchmarks/equivalence.py OUT_NEW
    python benchmarks/equivalence.py --compare OUT_OLD OUT_NEW

One thread keeps training bit-reproducible. Times, paths, source signatures (file mtimes) and the
per-case digests of inputs.json (built from them) are left out; everything else must be equal.
Takes about 5 minutes on 2 cores."""
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

if __name__ == '__main__' and not any(Path(p, 'autounet').is_dir() for p in sys.path[1:] if p):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout this script is in

import torch  # noqa: E402

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.io.atomic import write_json
from autounet.io.verify import check_layout
try:
    from autounet.preprocess.pipeline import preprocess_segmentation as preprocess_dataset
except ImportError:
    from autounet.preprocess.pipeline import preprocess_dataset
from autounet.workspace import resolve_dataset

TINY = api.TrainingConfig(epochs=2, iterations_per_epoch=3, val_iterations_per_epoch=1, num_workers=0)
SKIP_KEYS = {"time", "seconds", "duration", "created", "date", "started", "finished", "wall", "version", "elapsed",
             "host", "pid", "peak", "memory", "source_signature", "prediction", "reference"}

def clean(o):
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items() if not any(s in k.lower() for s in SKIP_KEYS)}
    if isinstance(o, list):
        return [clean(v) for v in o]
    if isinstance(o, float):
        return round(o, 6)
    return o

def digest(root: Path) -> dict:
    d = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "log" in p.name or p.suffix in (".html", ".lock", ".txt") or "report" in p.parts or p.name == "progress.png":
            continue
        rel = str(p.relative_to(root))
        if p.suffix in (".pth", ".pt"):
            ck = torch.load(p, weights_only=True, map_location="cpu")
            sd = ck.get("network", ck.get("network_weights", ck.get("state_dict", ck.get("model", {}))))
            h = hashlib.sha256()
            for k in sorted(sd):
                h.update(k.encode()); h.update(sd[k].cpu().numpy().tobytes())
            d[rel] = h.hexdigest()[:16]
        elif p.suffix == ".json":
            try:
                obj = json.loads(p.read_text())
                if p.name == "inputs.json":
                    obj.pop("cases", None)
                if p.name in ("spending.json", "run.json"):
                    continue
                d[rel] = clean(obj)
            except Exception:
                d[rel] = "unreadable"
        else:
            d[rel] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return d

def seg2d(tmp: Path):
    raw = api.make_example_dataset(tmp / "raw" / "Dataset950_Seg2D", dims=2, cases=10, test_cases=3, seed=1)
    api.run(raw, tmp, api.RunOptions(schedule=TINY, device="cpu", processes=1))
    api.predict(raw / "imagesTs", tmp / "pred", dataset=raw, root=tmp)
    api.predict(raw / "imagesTs", tmp / "pred_probs", dataset=raw, root=tmp,
                settings=api.PredictSettings(save_probabilities=True))
    api.export_model(raw, tmp / "model.onnx", root=tmp) if False else None

def cascade(tmp: Path):
    raw = api.make_example_dataset(tmp / "raw" / "Dataset951_Cascade", dims=3, cases=5, channels=1,
                                   anisotropic=True, shape=(10, 24, 24), test_cases=2)
    api.plan_and_preprocess(raw, root=tmp, processes=1, configurations=["3d_fullres"])
    paths = resolve_dataset(raw, tmp)
    plans = load_plans(paths.plans)
    full = plans.configurations["3d_fullres"]
    low = dataclasses.replace(full, name="3d_lowres", data_identifier="3d_lowres",
                              spacing=(full.spacing[0], full.spacing[1] * 1.5, full.spacing[2] * 1.5))
    casc = dataclasses.replace(full, name="3d_cascade_fullres", previous_stage="3d_lowres",
                               network=dataclasses.replace(full.network, input_channels=full.network.input_channels + 2))
    plans = dataclasses.replace(plans, configurations={**plans.configurations, "3d_lowres": low, "3d_cascade_fullres": casc})
    write_json(paths.plans, plans.to_json())
    spec, cases = check_layout(raw)
    preprocess_dataset(spec, cases, plans, paths, ["3d_lowres"], processes=1)
    tiny = dataclasses.replace(TINY, validation=api.PredictSettings(save_probabilities=True))
    for fold in range(5):
        api.train(raw, "3d_lowres", fold, root=tmp, device="cpu", config=tiny)
        api.train(raw, "3d_fullres", fold, root=tmp, device="cpu", config=tiny)
    for fold in range(5):
        api.train(raw, "3d_cascade_fullres", fold, root=tmp, device="cpu", config=tiny)
    api.find_best_configuration(raw, root=tmp)
    api.predict(raw / "imagesTs", tmp / "pred_cascade", dataset=raw, root=tmp, configurations=["3d_cascade_fullres"], folds=["0"])
    api.predict(raw / "imagesTs", tmp / "pred_best", dataset=raw, root=tmp)
    api.predict(raw / "imagesTs", tmp / "pred_onnx_be", dataset=raw, root=tmp, configurations=["3d_fullres"],
                settings=api.PredictSettings(backend="onnxruntime"))

def case(task):
    def go(tmp: Path):
        raw = api.make_case_dataset(tmp / "raw" / f"Dataset96{len(task)}_{task}", task=task, dims=2, cases=20, test_cases=4, seed=3)
        api.run(raw, tmp, api.RunOptions(schedule=TINY, device="cpu", processes=1))
        api.predict(raw / "imagesTs", tmp / "pred", dataset=raw, root=tmp)
        api.evaluate(raw / "labelsTs.csv", tmp / "pred" / "predictions.csv", output=tmp / "eval.json")
    return go

JOBS = {"seg2d": seg2d, "cascade": cascade, "classification": case("classification"),
        "multilabel": case("multilabel"), "regression": case("regression")}
def compare(a: Path, b: Path) -> int:
    """Print what differs between two captures; returns the number of differing files."""
    total = 0
    for name in JOBS:
        if not (a / f"{name}.digest.json").is_file():
            continue
        x = json.loads((a / f"{name}.digest.json").read_text())
        y = json.loads((b / f"{name}.digest.json").read_text())
        diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k) and not (
            k.endswith("inputs.json") and {**x.get(k, {}), "previous_stage": 0} == {**y.get(k, {}), "previous_stage": 0}))
        total += len(diff)
        print(f"{name}: {len(x)} files, {len(diff)} differ" + "".join(f"\n  {k}" for k in diff))
    return total


if __name__ == '__main__':
    if sys.argv[1] == "--compare":
        sys.exit(1 if compare(Path(sys.argv[2]), Path(sys.argv[3])) else 0)
    out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    which = sys.argv[2:] or ["seg2d", "cascade", "classification", "multilabel", "regression"]
    for name in which:
        tmp = out / name
        torch.manual_seed(0)
        JOBS[name](tmp)
        (out / f"{name}.digest.json").write_text(json.dumps(digest(tmp), indent=1, sort_keys=True))
        print("done", name, flush=True)
