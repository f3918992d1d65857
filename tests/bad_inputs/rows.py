"""The bad inputs autounet handles, one row each: what is wrong, the command, what the user must
read, the exit code, and what must (not) happen on disk. ``test_bad_inputs.py`` runs every row
and ``docs/bad_inputs.md`` is rendered from this list (a test keeps the two the same)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tests.bad_inputs.world import World, read_array, write_image

NOTHING = "nothing written or changed"


@dataclass(frozen=True)
class Row:
    """One bad input. ``command`` has placeholders ({ws} workspace, {raw} dataset, {tmp}, {zip},
    {results}, {pre} preprocessed, {fold} fold 0); ``message`` is a regular expression the output
    must match; ``effect`` says what happens on disk (NOTHING is checked on the whole tree, other
    effects by ``check``)."""

    id: str
    issue: str  # the issue point it answers ("13.1" ...) or "" for older behaviour
    what: str
    command: str
    message: str
    exit_code: int
    effect: str = NOTHING
    setup: Callable[[World, object], None] = lambda world, monkeypatch: None
    check: Callable[[World], None] | None = None
    tags: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- helpers for setups


def _dataset_json(world: World) -> dict:
    return json.loads((world.raw / "dataset.json").read_text())


def _write_dataset_json(world: World, d: dict) -> None:
    (world.raw / "dataset.json").write_text(json.dumps(d))


def _explicit_cases(world: World, rename: dict[str, str]) -> None:
    """dataset.json lists its cases explicitly; ``rename`` maps a case id to the id written there."""
    d = _dataset_json(world)
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (world.raw / "imagesTr").glob("*_0000.nii.gz"))
    d["dataset"] = {rename.get(c, c): {"images": [f"imagesTr/{c}_0000.nii.gz"], "label": f"labelsTr/{c}.nii.gz"}
                    for c in cases}
    _write_dataset_json(world, d)


def _first(folder: Path, pattern: str = "*.nii.gz") -> Path:
    return sorted(folder.glob(pattern))[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set_labels(world: World, change: Callable[[np.ndarray, int], np.ndarray]) -> None:
    for i, p in enumerate(sorted((world.raw / "labelsTr").glob("*.nii.gz"))):
        write_image(p, change(read_array(p), i).astype(np.uint8), like=p)


def _keep_cases(world: World, n: int) -> None:
    """Only the first ``n`` training cases remain."""
    cases = sorted(p.name[: -len(".nii.gz")] for p in (world.raw / "labelsTr").glob("*.nii.gz"))
    for c in cases[n:]:
        (world.raw / "labelsTr" / f"{c}.nii.gz").unlink()
        (world.raw / "imagesTr" / f"{c}_0000.nii.gz").unlink()
    d = _dataset_json(world)
    d["numTraining"] = n
    _write_dataset_json(world, d)
    shutil.rmtree(world.root / "preprocessed", ignore_errors=True)


def _test_input(world: World, value: float) -> None:
    """The first test image gets one voxel of ``value`` (stored as float32)."""
    p = _first(world.raw / "imagesTs")
    arr = read_array(p).astype(np.float32)
    arr[0, 0, 0] = value
    write_image(p, arr, like=p)


def _zip_with(world: World, members: dict[str, str | bytes], keep: bool = True) -> None:
    """Rewrite the exported model with extra (or replaced) members."""
    with zipfile.ZipFile(world.model_zip) as z:
        old = {n: z.read(n) for n in z.namelist()} if keep else {}
    old.update(members)
    with zipfile.ZipFile(world.model_zip, "w") as z:
        for name, data in old.items():
            z.writestr(name, data)


def _foreign_onnx(path: Path) -> None:
    """A valid ONNX graph (an identity) without autounet's metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    onnx.save(helper.make_model(graph), str(path))


def _predictions_with_probabilities(world: World) -> None:
    """Two copies of fold 0's validation (masks, probabilities, metadata) as prediction folders."""
    for name in ("a", "b"):
        shutil.copytree(world.fold() / "validation", world.tmp / name)


def _file_in_the_way(world: World) -> None:
    (world.tmp / "a_file").write_text("not a folder")


def _no_write_access(folder_name: str):
    def setup(world: World, monkeypatch) -> None:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).name == folder_name and
                            mode & os.W_OK else real(p, mode, **kw))
        (world.tmp / folder_name).mkdir()
    return setup


def _origin_shifted(world: World, direction: bool = False) -> None:
    """A prediction folder whose one mask has another origin (or direction) than its reference."""
    import SimpleITK as sitk

    (world.tmp / "ref").mkdir()
    (world.tmp / "pred").mkdir()
    label = _first(world.raw / "labelsTr")
    shutil.copy(label, world.tmp / "ref" / label.name)
    img = sitk.ReadImage(str(label))
    if direction:
        img.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    else:
        img.SetOrigin(tuple(o + 25.0 for o in img.GetOrigin()))
    sitk.WriteImage(img, str(world.tmp / "pred" / label.name))


def _edit_a_label(world: World) -> None:
    p = _first(world.raw / "labelsTr")
    arr = read_array(p)
    arr[:] = 0
    arr[2:6, 5:15, 5:15] = 1
    write_image(p, arr.astype(np.uint8), like=p)


def _label_edited_and_redone(world: World) -> None:
    p = _first(world.raw / "labelsTr")
    case = p.name[: -len(".nii.gz")]
    seg = np.load(world.preprocessed / "3d_fullres" / f"{case}_seg.npy")
    assert set(np.unique(seg)) == {0, 1}, "the edited label (no lesion) must reach the preprocessed labels"
    reference = read_array(world.preprocessed / "gt_segmentations" / p.name)
    assert np.array_equal(reference, read_array(p))


def _data_whole_again(world: World) -> None:
    case = _first(world.preprocessed / "3d_fullres", "*_data.npy")
    np.load(case, mmap_mode="r")  # opens: the truncated file was written again


def _all_but(case: str) -> Callable[[World], None]:
    """Every test case but ``case`` was predicted into {tmp}/out."""
    def check(world: World) -> None:
        cases = {p.name[: -len("_0000.nii.gz")] for p in (world.raw / "imagesTs").glob("*_0000.nii.gz")}
        written = sorted(p.name for p in (world.tmp / "out").glob("*.nii.gz"))
        assert written == sorted(f"{c}.nii.gz" for c in cases - {case}), written
    return check


def _no_unpacked_model_left(world: World) -> None:
    assert not list((world.tmp / "scratch").iterdir()), list((world.tmp / "scratch").iterdir())


def _scratch_tempdir(world: World, monkeypatch) -> None:
    import tempfile

    (world.tmp / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(world.tmp / "scratch"))


# --------------------------------------------------------------------------- the rows

def _instances(world: World, labels: dict | None = None, negative: bool = False) -> None:
    """Turn the world's raw dataset into an instance one (``"task": "instance"``, ``labels``);
    ``negative``: the first label map gets an object id of -3."""
    d = _dataset_json(world)
    d["task"], d["labels"] = "instance", labels or {"background": 0, "cell": 1}
    _write_dataset_json(world, d)
    if negative:
        path = _first(world.raw / "labelsTr")
        seg = read_array(path).astype(np.int16)
        seg[seg == 1] = -3
        write_image(path, seg)


def _case_level(world: World, rows: list[str] | None = None, task: str = "classification",
                labels: dict | None = None) -> None:
    """Turn the world's raw dataset into a case-level one: ``task`` in dataset.json, no label
    maps, and labelsTr.csv with ``rows`` (default: every case, alternating classes 0 and 1)."""
    d = _dataset_json(world)
    d["task"], d["labels"] = task, labels or {"normal": 0, "abnormal": 1}
    _write_dataset_json(world, d)
    shutil.rmtree(world.raw / "labelsTr")
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (world.raw / "imagesTr").glob("*_0000.nii.gz"))
    lines = rows if rows is not None else [f"{c},{i % 2}" for i, c in enumerate(cases)]
    (world.raw / "labelsTr.csv").write_text("case,label\n" + "".join(f"{r}\n" for r in lines))


def _predictions_csv(world: World) -> None:
    (world.tmp / "ref.csv").write_text("case,label\na,0\nb,1\nc,1\n")
    (world.tmp / "pred.csv").write_text("case,label,prob_normal,prob_abnormal\na,0,0.9,0.1\nb,1,0.2,0.8\n")


def _npz(world: World, drop: str) -> None:
    arrays = {f"{s}_{k}": (np.zeros((4, 28, 28), np.uint8) if k == "images" else np.array([[0], [1], [0], [1]]))
              for s in ("train", "val") for k in ("images", "labels")}
    arrays.pop(drop)
    np.savez(world.tmp / "mnist.npz", **arrays)


V = "autounet verify_dataset {raw} --root {ws} -p 1"
PLAN = "autounet plan_and_preprocess {raw} --root {ws} -p 1 -c 3d_fullres"
TRAIN = "autounet train {raw} 3d_fullres 1 --root {ws} --device cpu --num-workers 0"
PREDICT = "autounet predict -d {raw} -c 3d_fullres --root {ws} --device cpu --no-tta -p 0"

ROWS: list[Row] = [
    # ---- names read from files never leave their folder (13.1, 13.2)
    Row("case-id-escapes", "13.1", "dataset.json's `dataset` map names a case `../../../../escaped_case`", PLAN,
        r"case id '\.\./\.\./\.\./\.\./escaped_case' cannot be used in a file name", 2,
        setup=lambda w, m: _explicit_cases(w, {"case_000": "../../../../escaped_case"})),
    Row("case-id-escapes-verify", "13.1", "the same, verified", V, r"'dataset' entry: case id '\.\./", 2,
        setup=lambda w, m: _explicit_cases(w, {"case_000": "../../../../escaped_case"})),
    Row("case-id-hidden", "13.1", "a case id starting with a dot (`.case`)", V, r"case id '\.case' cannot be used", 2,
        setup=lambda w, m: _explicit_cases(w, {"case_001": ".case"})),
    Row("case-file-space", "13.1", "a training image named `case 9_0000.nii.gz` (a space in the case id)", V,
        r"case 9_0000\.nii\.gz: case id 'case 9' cannot be used in a file name", 2,
        setup=lambda w, m: [shutil.copy(_first(w.raw / "imagesTr"), w.raw / "imagesTr" / "case 9_0000.nii.gz"),
                            shutil.copy(_first(w.raw / "labelsTr"), w.raw / "labelsTr" / "case 9.nii.gz")]),
    Row("ensemble-ending-escapes", "13.2", "a prediction's `CASE.json` says `\"ending\": \"/../../X.nii.gz\"`",
        "autounet ensemble -i {tmp}/a {tmp}/b -o {tmp}/out", r"'ending' '/\.\./\.\./X\.nii\.gz' is not an image file "
        r"ending", 2, effect="nothing written (the inputs were prepared by the row)",
        setup=lambda w, m: [_predictions_with_probabilities(w), [
            p.write_text(p.read_text().replace('"ending": ".nii.gz"', '"ending": "/../../X.nii.gz"'))
            for p in (w.tmp / "a").glob("*.json") if p.name != "summary.json"]],
        check=lambda w: _nothing_outside(w)),
    Row("model-manifest-escapes", "13.1", "a model zip whose manifest names the configuration `../../evil`",
        "autounet predict -m {zip} -i {raw}/imagesTs -o {tmp}/out --device cpu",
        r"configuration '\.\./\.\./evil' cannot be used", 2,
        setup=lambda w, m: _zip_with(w, {"autounet_model.json": json.dumps(
            {"configurations": ["../../evil"], "folds": ["0"], "checkpoint": "final"})})),
    Row("model-member-escapes", "", "a model zip with a member `../outside.txt`",
        "autounet import_model {zip} -o {tmp}/model", r"would be written outside", 2,
        setup=lambda w, m: _zip_with(w, {"../outside.txt": "gotcha"})),
    Row("plans-identifier-escapes", "13.1", "plans.json edited to `\"data_identifier\": \"../../x\"`", TRAIN,
        r"data identifier '\.\./\.\./x' cannot be used", 2,
        setup=lambda w, m: (w.preprocessed / "plans.json").write_text(
            (w.preprocessed / "plans.json").read_text().replace('"data_identifier": "3d_fullres"',
                                                                '"data_identifier": "../../x"'))),
    Row("best-configuration-escapes", "13.1", "best_configuration.json names the configuration `../x`",
        PREDICT.replace("-c 3d_fullres ", "") + " -i {raw}/imagesTs -o {tmp}/out",
        r"best_configuration\.json: configuration '\.\./x' cannot be used", 2,
        setup=lambda w, m: (w.results / "best_configuration.json").write_text(json.dumps(
            {"configurations": ["../x"], "postprocessing": "postprocessing.json"}))),
    Row("splits-unknown-case", "", "a `--splits` file naming a case that is not in the dataset",
        PLAN + " --splits {tmp}/splits.json", r"names case\(s\) not in the dataset: \['\.\./x'\]", 2,
        effect="the plan is written again (as it was); no split, no case",
        setup=lambda w, m: (w.tmp / "splits.json").write_text(json.dumps([{"train": ["../x"], "val": ["case_000"]}])),
        check=lambda w: None),
    Row("predict-input-name", "13.1", "a test image named `my scan_0000.nii.gz`", PREDICT + " -i {raw}/imagesTs -o {tmp}/out",
        r"case id 'my scan' cannot be used in a file name .*rename the file", 1,
        effect="the other cases are predicted",
        setup=lambda w, m: os.replace(_first(w.raw / "imagesTs"), w.raw / "imagesTs" / "my scan_0000.nii.gz"),
        check=_all_but("my scan")),

    # ---- no command writes over its inputs, a model or a dataset (13.3-13.7)
    Row("predict-same-file", "13.3", "`predict -i F -o F` (one file as input and output)",
        PREDICT + " -i {raw}/imagesTs/case_ts_000_0000.nii.gz -o {raw}/imagesTs/case_ts_000_0000.nii.gz",
        r"the output is the input file", 2),
    Row("predict-same-folder", "13.4", "`predict -i D -o D` (one folder as input and output)",
        PREDICT + " -i {raw}/imagesTs -o {raw}/imagesTs", r"the output is the input folder", 2),
    Row("predict-lone-channel-1", "13.4", "a test case with only a `_0001` file (channels must run from `_0000`)",
        PREDICT + " -i {raw}/imagesTs -o {tmp}/out", r"has the channel files _0001; they must be numbered _0000 to _0000",
        1, effect="the other cases are predicted",
        setup=lambda w, m: os.replace(_first(w.raw / "imagesTs"),
                                      _first(w.raw / "imagesTs").with_name("case_ts_000_0001.nii.gz")),
        check=_all_but("case_ts_000")),
    Row("ensemble-into-input", "13.5", "`ensemble -o` is one of its `-i` folders",
        "autounet ensemble -i {tmp}/a {tmp}/b -o {tmp}/a", r"the output folder is one of the input folders", 2,
        effect="nothing written (the inputs were prepared by the row)",
        setup=lambda w, m: _predictions_with_probabilities(w), check=lambda w: _nothing_outside(w)),
    Row("import-into-model", "13.6", "`import_model` into a folder that holds a model",
        "autounet import_model {zip} -o {results}", r"not empty; importing would mix two models", 2),
    Row("make-example-onto-dataset", "13.7", "`make_example_dataset` onto an existing dataset",
        "autounet make_example_dataset {raw} --cases 3", r"not empty; a new example dataset would mix", 2),
    Row("make-video-2d", "14.2", "`make_example_dataset --video` with options for other datasets",
        "autounet make_example_dataset {tmp}/video --video 10 --dims 2", r"--video writes one-channel 2D\+time NIfTI "
        r"videos; leave out --dims, --channels, --anisotropic", 2),
    Row("export-onto-zip", "", "`export_model -o` names an existing zip",
        "autounet export_model {raw} -c 3d_fullres -o {zip} --root {ws}", r"exists; choose another file, or pass "
        r"--overwrite", 2),
    Row("postprocess-in-place", "", "`apply_postprocessing -o` is its `-i` folder",
        "autounet apply_postprocessing -i {fold}/validation -o {fold}/validation -pp {tmp}/rules.json",
        r"the output is the input folder, whose masks would be replaced", 2,
        setup=lambda w, m: (w.tmp / "rules.json").write_text(json.dumps({"rules": {"keep_largest_foreground": True}}))),
    Row("train-over-a-run", "", "`train` a fold that already holds a run, without --continue",
        TRAIN.replace(" 1 ", " 0 ") + " --epochs 1", r"already holds a training run; use --continue", 2),

    # ---- no silent wrong result (13.8-13.12)
    Row("predict-inf-nifti", "13.8", "a test image (NIfTI) with one Inf voxel", PREDICT + " -i {raw}/imagesTs -o {tmp}/out",
        r"case_ts_000_0000\.nii\.gz: 1 NaN or Inf voxel\(s\)", 1, effect="the other cases are predicted",
        setup=lambda w, m: _test_input(w, np.inf), check=_all_but("case_ts_000")),
    Row("predict-nan-nifti", "13.8", "a test image (NIfTI) with one NaN voxel", PREDICT + " -i {raw}/imagesTs -o {tmp}/out",
        r"1 NaN or Inf voxel\(s\)", 1, effect="the other cases are predicted",
        setup=lambda w, m: _test_input(w, np.nan), check=_all_but("case_ts_000")),
    Row("label-edited", "13.9", "a raw label edited after preprocessing", PLAN, r"preprocessed 1 case\(s\), 5 already done",
        0, effect="that case is preprocessed again; its reference is copied again",
        setup=lambda w, m: _edit_a_label(w), check=_label_edited_and_redone),
    Row("evaluate-origin", "13.10", "a prediction whose origin differs from its reference's",
        "autounet evaluate -r {tmp}/ref --prediction {tmp}/pred", r"geometry differs from the reference .*origin", 0,
        effect="metrics written, with the warning in summary.json", setup=lambda w, m: _origin_shifted(w),
        check=lambda w: _warning_in_summary(w)),
    Row("evaluate-direction", "13.10", "a prediction whose direction differs from its reference's",
        "autounet evaluate -r {tmp}/ref --prediction {tmp}/pred", r"geometry differs from the reference .*direction", 0,
        effect="metrics written, with the warning in summary.json", setup=lambda w, m: _origin_shifted(w, True),
        check=lambda w: _warning_in_summary(w)),
    Row("epochs-zero", "13.11", "`train --epochs 0`", TRAIN + " --epochs 0", r"argument --epochs: must be at least 1, got 0",
        2),
    Row("iterations-negative", "13.11", "`train --iterations-per-epoch -3`", TRAIN + " --iterations-per-epoch -3",
        r"argument --iterations-per-epoch: must be at least 1, got -3", 2),
    Row("batch-zero", "13.11", "`train --batch-size 0`", TRAIN + " --batch-size 0",
        r"argument --batch-size: must be at least 1, got 0", 2),
    Row("workers-negative", "13.11", "`train --num-workers -1`", TRAIN + " --num-workers -1",
        r"argument --num-workers: must be 0 or more", 2),
    Row("step-too-large", "", "`predict --step 2` (windows would leave gaps)", PREDICT + " -i {raw}/imagesTs -o {tmp}/out "
        "--step 2", r"the window step must be in \(0, 1\]", 2),
    Row("label-in-no-case", "13.12", "a declared label that occurs in no training case", V,
        r"label 'tumour' \(3\) occurs in no training case", 0, effect=NOTHING,
        setup=lambda w, m: _write_dataset_json(w, {**_dataset_json(w), "labels": {
            **_dataset_json(w)["labels"], "tumour": 3}})),
    Row("label-in-one-case", "13.12", "a declared label that occurs in one training case only", V,
        r"label 'lesion' \(2\) occurs only in case case_000", 0,
        setup=lambda w, m: _set_labels(w, lambda a, i: np.where((a == 2) & (i > 0), 1, a))),

    # ---- messages and leaks (13.13-13.17)
    Row("predict-output-under-file", "13.13", "`predict -o` below a regular file", PREDICT + " -i {raw}/imagesTs "
        "-o {tmp}/a_file/out", r"a_file: not a folder", 2, setup=lambda w, m: _file_in_the_way(w)),
    Row("predict-output-read-only", "13.13", "`predict -o` a folder without write permission",
        PREDICT + " -i {raw}/imagesTs -o {tmp}/locked", r"locked: cannot write here", 2,
        effect="nothing written (the folder was made by the row)", setup=_no_write_access("locked")),
    Row("export-under-file", "13.13", "`export_model -o` below a regular file",
        "autounet export_model {raw} -c 3d_fullres -o {tmp}/a_file/m.zip --root {ws}", r"a_file: not a folder", 2,
        setup=lambda w, m: _file_in_the_way(w)),
    Row("evaluate-under-file", "13.13", "`evaluate -o` below a regular file",
        "autounet evaluate -r {raw}/labelsTs --prediction {raw}/labelsTs -o {tmp}/a_file/x", r"a_file: not a folder", 2,
        setup=lambda w, m: _file_in_the_way(w)),
    Row("postprocess-under-file", "13.13", "`apply_postprocessing -o` below a regular file",
        "autounet apply_postprocessing -i {fold}/validation -o {tmp}/a_file/x -pp {tmp}/rules.json",
        r"a_file: not a folder", 2, setup=lambda w, m: [
            _file_in_the_way(w), (w.tmp / "rules.json").write_text(json.dumps({"rules": {}}))]),
    Row("import-under-file", "13.13", "`import_model -o` below a regular file",
        "autounet import_model {zip} -o {tmp}/a_file/m", r"a_file: not a folder", 2,
        setup=lambda w, m: _file_in_the_way(w)),
    Row("plan-read-only", "13.13", "`plan_and_preprocess` into a workspace without write permission",
        "autounet plan_and_preprocess {raw} --root {tmp}/locked -p 1", r"locked: cannot write here", 2,
        effect="nothing written (the folder was made by the row)", setup=_no_write_access("locked")),
    Row("plan-memory-too-small", "14.1", "`plan_and_preprocess --gpu-memory-gb` below what any network needs",
        PLAN + " --gpu-memory-gb 0.5", r"--gpu-memory-gb/-gpu_memory_target: must be at least 1 \(GB; below that no network fits\)", 2),
    Row("all-background", "13.14", "label maps without any foreground", V, r"no label map holds any foreground voxel", 2,
        setup=lambda w, m: _set_labels(w, lambda a, i: np.zeros_like(a))),
    Row("single-case", "13.14", "a dataset of one training case", V, r"1 training case\(s\); the 5-fold "
        r"cross-validation needs at least 2", 2, effect="nothing written (the case was removed by the row)",
        setup=lambda w, m: _keep_cases(w, 1), check=lambda w: None),
    Row("single-case-plan", "13.14", "a dataset of one training case, planned", PLAN.replace(" -c 3d_fullres", ""),
        r"needs at least 2", 2, effect="no plans.json, no splits.json",
        setup=lambda w, m: _keep_cases(w, 1), check=lambda w: _no_plan(w)),
    Row("truncated-data-train", "13.15", "a truncated preprocessed `_data.npy`", TRAIN,
        r"_data\.npy: damaged or unreadable .*run autounet plan_and_preprocess again", 2,
        effect="only the fold's (empty) log is written",
        setup=lambda w, m: _truncate(_first(w.preprocessed / "3d_fullres", "*_data.npy")), check=lambda w: None),
    Row("truncated-data-plan", "13.15", "a truncated preprocessed `_data.npy`, planned again", PLAN,
        r"preprocessed 1 case\(s\), 5 already done", 0, effect="that case is preprocessed again",
        setup=lambda w, m: _truncate(_first(w.preprocessed / "3d_fullres", "*_data.npy")), check=_data_whole_again),
    Row("truncated-latest", "13.15", "a truncated `checkpoint_latest.pt` under `--continue`",
        TRAIN.replace(" 1 ", " 0 ") + " --continue", r"checkpoint_latest\.pt: not a readable autounet checkpoint.*cannot "
        r"continue from it: .*delete .*fold_0 to start over", 2, effect="only the fold's log is written",
        setup=lambda w, m: [(w.fold() / "checkpoint_latest.pt").write_bytes(b"PK\x03\x04 half")],
        check=lambda w: None),
    Row("model-zip-temporary", "13.16", "`predict -m` (a model zip is unpacked for the call)",
        "autounet predict -m {zip} -i {raw}/imagesTs -o {tmp}/out --device cpu --no-tta -p 0", r"wrote 2 prediction",
        0, effect="no unpacked copy left behind", setup=_scratch_tempdir, check=_no_unpacked_model_left),
    Row("model-zip-temporary-failed", "13.16", "`predict -m` with a configuration the zip does not hold",
        "autounet predict -m {zip} -c 2d -i {raw}/imagesTs -o {tmp}/out --device cpu", r"model\.zip: holds the "
        r"configuration\(s\) 3d_fullres, not 2d", 2, effect="no unpacked copy left behind", setup=_scratch_tempdir, check=_no_unpacked_model_left),
    Row("onnx-model-damaged", "17", "`predict -m` with a `.onnx` file that is not ONNX",
        "autounet predict -m {tmp}/model.onnx -i {raw}/imagesTs -o {tmp}/out", r"model\.onnx: not a readable ONNX "
        r"file", 2, setup=lambda w, m: (w.tmp / "model.onnx").write_bytes(b"not an ONNX file")),
    Row("onnx-model-foreign", "17", "`predict -m` with an ONNX file autounet did not export",
        "autounet predict -m {tmp}/model.onnx -i {raw}/imagesTs -o {tmp}/out", r"model\.onnx: not an autounet ONNX "
        r"model .*export it with `autounet export_model", 2, setup=lambda w, m: _foreign_onnx(w.tmp / "model.onnx")),

    # ---- found and refused before (kept here so the table is complete)
    Row("unknown-dataset-id", "", "a dataset id with no dataset", "autounet verify_dataset 987 --root {ws}",
        r"no dataset with id 987", 2),
    Row("dataset-json-missing", "", "no dataset.json", V, r"dataset\.json is missing", 2,
        setup=lambda w, m: (w.raw / "dataset.json").unlink()),
    Row("dataset-json-malformed", "", "dataset.json that is not JSON", V, r"malformed JSON", 2,
        setup=lambda w, m: (w.raw / "dataset.json").write_text("{labels: ")),
    Row("undeclared-label", "", "a label map holding a value dataset.json does not declare", V,
        r"label value\(s\) \[7\] are not declared", 2,
        setup=lambda w, m: _set_labels(w, lambda a, i: np.where(a == 2, 7, a) if i == 0 else a)),
    Row("truncated-training-image", "", "a truncated training image", V, r"truncated", 2,
        setup=lambda w, m: _truncate(_first(w.raw / "imagesTr"))),
    Row("predict-truncated-input", "", "a truncated test image", PREDICT + " -i {raw}/imagesTs -o {tmp}/out",
        r"truncated", 1, effect="the other cases are predicted",
        setup=lambda w, m: _truncate(_first(w.raw / "imagesTs")), check=_all_but("case_ts_000")),
    Row("predict-extra-channel", "", "a test case with two channel files for a one-channel model",
        PREDICT + " -i {raw}/imagesTs -o {tmp}/out", r"2 channel\(s\), the model takes 1", 1,
        effect="the other cases are predicted",
        setup=lambda w, m: shutil.copy(_first(w.raw / "imagesTs"),
                                       _first(w.raw / "imagesTs").with_name("case_ts_000_0001.nii.gz")),
        check=_all_but("case_ts_000")),
    Row("predict-2d-into-3d", "", "a 2D image for a 3D model", PREDICT + " -i {raw}/imagesTs -o {tmp}/out",
        r"a 2D image, but the model was trained on 3D volumes", 1, effect="the other cases are predicted",
        setup=lambda w, m: write_image(_first(w.raw / "imagesTs"), np.zeros((20, 20), np.float32)),
        check=_all_but("case_ts_000")),
    Row("predict-no-model", "", "`predict` without -d or -m", "autounet predict -i {raw}/imagesTs -o {tmp}/out",
        r"say which model to use", 2),
    Row("model-not-zip", "", "`predict -m` a file that is not a zip",
        "autounet predict -m {raw}/dataset.json -i {raw}/imagesTs -o {tmp}/out", r"not a zip file", 2),
    Row("model-without-manifest", "", "a zip without autounet's manifest", "autounet import_model {zip} -o {tmp}/m",
        r"not an autounet model", 2, setup=lambda w, m: _zip_with(w, {"x.txt": "x"}, keep=False)),
    Row("train-unplanned", "", "`train` a configuration that was not planned", TRAIN.replace("3d_fullres", "3d_lowres"),
        r"configuration '3d_lowres' is not in .*planned: 2d, 3d_fullres", 2),
    Row("train-fold-7", "", "`train` fold 7 of 5", TRAIN.replace(" 1 ", " 7 "), r"fold 7 does not exist", 2),
    Row("time-budget-words", "", "`train --time-budget soon`", TRAIN + " --time-budget soon", r"not understood", 2),
    Row("find-best-untrained", "", "`find_best_configuration` before every fold is trained",
        "autounet find_best_configuration {raw} --root {ws} -p 1", r"no configuration .* has all 5 folds validated", 2),
    Row("ensemble-one-folder", "", "`ensemble` with one input folder", "autounet ensemble -i {fold}/validation -o {tmp}/e",
        r"at least two prediction folders", 2),
    Row("ensemble-no-probabilities", "", "`ensemble` of folders without saved probabilities",
        "autounet ensemble -i {raw}/labelsTs {raw}/labelsTs -o {tmp}/e", r"no saved probabilities", 2),
    Row("evaluate-missing-prediction", "", "`evaluate` with a reference that has no prediction",
        "autounet evaluate -r {raw}/labelsTr --prediction {raw}/labelsTs", r"no prediction for 6 of 6", 2),
    Row("evaluate-shape", "", "`evaluate` a prediction of another shape than its reference",
        "autounet evaluate -r {raw}/labelsTs --prediction {tmp}/pred", r"prediction shape .* differs from reference", 2,
        effect="nothing written (the prediction was made by the row)",
        setup=lambda w, m: [(w.tmp / "pred").mkdir(), [write_image(w.tmp / "pred" / p.name, np.zeros((3, 4, 5), np.uint8))
                                                      for p in (w.raw / "labelsTs").glob("*.nii.gz")]]),
    Row("rules-malformed", "", "`apply_postprocessing -pp` a file that holds no rules",
        "autounet apply_postprocessing -i {fold}/validation -o {tmp}/out -pp {raw}/dataset.json",
        r"not a postprocessing file", 2),
    Row("export-untrained", "", "`export_model` of a configuration without trained folds",
        "autounet export_model {raw} -c 2d -o {tmp}/m.zip --root {ws}", r"2d has no fold with a final checkpoint yet; train it with `autounet train Dataset\d+_\w+ 2d", 2),
    # ---- instance datasets (25.2): object ids in labelsTr
    Row("instance-labels", "25.2", "an instance dataset whose dataset.json declares several object classes", V,
        r"for task 'instance', 'labels' must be \{\"background\": 0, \"<object name>\": 1\}", 2,
        setup=lambda w, m: _instances(w, {"background": 0, "cell": 1, "nucleus": 2})),
    Row("instance-negative-id", "25.2", "an instance label map with a negative object id", V,
        r"case_000\.nii\.gz: object ids must be 0 \(background\) or positive, found -3", 2,
        setup=lambda w, m: _instances(w, negative=True)),
    # ---- case-level tasks (16): targets in labelsTr.csv, predictions and references as CSV files
    Row("case-targets-problems", "16", "labelsTr.csv misses a case and names an undeclared class", V,
        r"(?s)labelsTr\.csv:4: undeclared class value 7; declared: 0 \('normal'\), 1 \('abnormal'\).*case 'case_005' has no row", 2,
        setup=lambda w, m: _case_level(w, ["case_000,0", "case_001,1", "case_002,7", "case_003,0", "case_004,1"])),
    Row("case-targets-missing", "16", "a classification dataset without labelsTr.csv", V,
        r"labelsTr\.csv.*(missing|does not exist|not found)", 2,
        setup=lambda w, m: [_case_level(w), (w.raw / "labelsTr.csv").unlink()]),
    Row("case-task-unknown", "16", "dataset.json's `task` is not a known task", V,
        r"'task' must be one of segmentation, instance, classification, multilabel, regression, found 'detection'", 2,
        setup=lambda w, m: _case_level(w, task="detection")),
    Row("case-labels-gaps", "16", "classification labels that are not 0..K-1", V,
        r"maps each name to one of the class values 0\.\.1", 2,
        setup=lambda w, m: _case_level(w, labels={"normal": 0, "abnormal": 2})),
    Row("case-evaluate-missing", "16", "a predictions CSV without a reference case",
        "autounet evaluate -r {tmp}/ref.csv --prediction {tmp}/pred.csv", r"no prediction for 1 reference case\(s\).*: c", 2,
        setup=lambda w, m: _predictions_csv(w)),
    Row("medmnist-missing-key", "16", "`convert_medmnist` of an .npz without `val_labels`",
        "autounet convert_medmnist {tmp}/mnist.npz {tmp}/Dataset990_Mnist", r"mnist\.npz.*val_labels", 2,
        setup=lambda w, m: _npz(w, "val_labels")),
    # ---- what a newcomer types (15.3): errors that point to a command that works
    Row("time-budget-bare-number", "15.3", "`train --time-budget 45` (minutes or seconds?)", TRAIN + " --time-budget 45",
        r"needs a unit: write e\.g\. 30m, 30min, 8h, 1h30m or 90s", 2),
    Row("train-fold-word", "15.3", "`train` fold `x`", TRAIN.replace(" 1 ", " x "), r"a fold is a number 0-4 .* or 'all'", 2),
    Row("train-folds-last-bad", "15.3", "`train` folds `1 9`: the bad one comes last", TRAIN.replace(" 1 ", " 1 9 "),
        r"fold 9 does not exist: a fold is 0-4 .*nothing was trained", 2),
    Row("predict-unplanned", "15.3", "`predict -c 3d` (no such configuration)",
        PREDICT.replace("-c 3d_fullres", "-c 3d") + " -i {raw}/imagesTs -o {tmp}/out",
        r"configuration '3d' is not planned for Dataset\d+_\w+; planned: 2d, 3d_fullres; trained: 3d_fullres "
        r"\(e\.g\. -c 3d_fullres\)", 2),
    Row("predict-untrained", "15.3", "`predict -c 2d` before 2d is trained",
        PREDICT.replace("-c 3d_fullres", "-c 2d") + " -i {raw}/imagesTs -o {tmp}/out",
        r"2d has no fold with a final checkpoint yet; train it with `autounet train Dataset\d+_\w+ 2d 0 1 2 3 4", 2),
    Row("nnunet-plans-identifier", "15.2", "nnU-Net's `train ... -p nnUNetPlans`", TRAIN + " -p nnUNetPlans",
        r"autounet keeps one plan per dataset", 2),
    Row("nnunet-trainer", "15.2", "nnU-Net's `train ... -tr nnUNetTrainer`", TRAIN + " -tr nnUNetTrainer",
        r"autounet has one trainer; its settings are flags", 2),
    Row("splits-malformed", "", "a `--splits` file that is not a list of folds", PLAN + " --splits {raw}/dataset.json",
        r"a split file must be a list", 2, effect="the plan is written again (as it was); no split, no case",
        check=lambda w: None),
]


def _nothing_outside(world: World) -> None:
    """Nothing written anywhere but what the row prepared (checked by the runner's snapshot)."""


def _warning_in_summary(world: World) -> None:
    summary = json.loads((world.tmp / "pred" / "summary.json").read_text())
    assert "geometry differs" in summary["cases"][0]["warning"]


def _no_plan(world: World) -> None:
    assert not (world.preprocessed / "plans.json").exists() and not (world.preprocessed / "splits.json").exists()
