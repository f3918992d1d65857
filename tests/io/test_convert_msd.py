"""Converting a Medical Segmentation Decathlon task folder into the raw layout: voxels, geometry and
labels kept, a v2 dataset.json, everything or nothing written, every broken input named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.errors import DatasetError, WorkspaceError
from autounet.io.msd import convert_msd
from autounet.io.verify import verify_dataset
from autounet.workspace import RawPaths

SPACING = (0.7, 0.8, 3.0)  # x, y, z: anisotropic
ORIGIN = (10.0, -20.5, 5.25)
_A = np.deg2rad(30)
DIRECTION = np.array([[np.cos(_A), -np.sin(_A), 0], [np.sin(_A), np.cos(_A), 0], [0, 0, 1]])
SHAPE = (10, 9, 8)  # z, y, x
LABELS = {"0": "background", "1": "edema", "2": "tumour"}


def _place(img: sitk.Image) -> sitk.Image:
    """Give a 3D or 4D image the test geometry (a 4D image's 4th axis is the modality)."""
    if img.GetDimension() == 4:
        direction = np.eye(4)
        direction[:3, :3] = DIRECTION
        img.SetSpacing((*SPACING, 1.0))
        img.SetOrigin((*ORIGIN, 0.0))
        img.SetDirection(direction.ravel().tolist())
    else:
        img.SetSpacing(SPACING)
        img.SetOrigin(ORIGIN)
        img.SetDirection(DIRECTION.ravel().tolist())
    return img


def make_task(root: Path, name: str = "Task07_Tiny", modalities: tuple[str, ...] = ("FLAIR", "T1w"),
              n_train: int = 3, n_test: int = 1, float_labels: bool = False) -> Path:
    """An MSD task as distributed: one (4D when several modalities) image per case, old dataset.json,
    plus macOS junk files."""
    rng = np.random.default_rng(0)
    folder, paths = root / name, RawPaths(root / name)
    for d in (paths.images("Tr"), paths.labels("Tr"), paths.images("Ts")):
        d.mkdir(parents=True)
    training, test = [], []
    for i in range(n_train + n_test):
        case, split = f"tiny_{i:03d}", "Tr" if i < n_train else "Ts"
        data = rng.normal(100, 20, (len(modalities), *SHAPE)).astype(np.float32)
        image_rel = f"./{paths.images(split).name}/{case}.nii.gz"
        volumes = [sitk.GetImageFromArray(d) for d in data]
        sitk.WriteImage(_place(sitk.JoinSeries(volumes) if len(volumes) > 1 else volumes[0]), str(folder / image_rel))
        if split == "Ts":
            test.append(image_rel)
            continue
        seg = np.zeros(SHAPE, np.uint8)
        seg[2:5, 2:6, 1:4], seg[6:9, 3:7, 4:7 - (i % 2)] = 1, 2
        label_rel = f"./{paths.labels('Tr').name}/{case}.nii.gz"
        sitk.WriteImage(_place(sitk.GetImageFromArray(seg.astype(np.float32 if float_labels else np.uint8))),
                        str(folder / label_rel))
        training.append({"image": image_rel, "label": label_rel})
    for d in (paths.images("Tr"), paths.labels("Tr")):
        (d / "._tiny_000.nii.gz").write_bytes(b"\x00\x05\x16\x07Mac OS X junk")
    (folder / "._dataset.json").write_bytes(b"\x00\x05\x16\x07")
    paths.dataset_json.write_text(json.dumps({
        "name": "TINY", "description": "tiny test task", "reference": "nobody", "licence": "CC-BY-SA 4.0",
        "release": "1.0", "tensorImageSize": "4D" if len(modalities) > 1 else "3D",
        "modality": {str(i): m for i, m in enumerate(modalities)}, "labels": LABELS,
        "numTraining": n_train, "numTest": n_test, "training": training, "test": test}))
    return folder


def _listed(folder: Path) -> list[dict[str, str]]:
    return json.loads(RawPaths(folder).dataset_json.read_text())["training"]


def _assert_geometry(img: sitk.Image) -> None:
    assert img.GetDimension() == 3
    np.testing.assert_allclose(img.GetSpacing(), SPACING, rtol=1e-5)
    np.testing.assert_allclose(img.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), DIRECTION, atol=1e-5)


def test_4d_task_is_split_into_one_file_per_modality(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    out = convert_msd(task, tmp_path / "raw")
    assert out == (tmp_path / "raw" / "Dataset007_Tiny").resolve()
    raw = RawPaths(out)
    for i in range(3):
        case = f"tiny_{i:03d}"
        source_image = sitk.ReadImage(str(RawPaths(task).images("Tr") / f"{case}.nii.gz"))
        assert source_image.GetDimension() == 4 and source_image.GetSize() == (8, 9, 10, 2)
        source = sitk.GetArrayFromImage(source_image)
        for c in range(2):
            channel = sitk.ReadImage(str(raw.image_file(case, c, ".nii.gz")))
            _assert_geometry(channel)
            np.testing.assert_array_equal(sitk.GetArrayFromImage(channel), source[c])
        assert not raw.image_file(case, 2, ".nii.gz").exists()
        label = sitk.ReadImage(str(raw.label_file(case, ".nii.gz")))
        _assert_geometry(label)
        assert label.GetPixelID() == sitk.sitkUInt8
        original = sitk.ReadImage(str(RawPaths(task).labels("Tr") / f"{case}.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(original))
    test_files = sorted(p.name for p in raw.images("Ts").iterdir())
    assert test_files == ["tiny_003_0000.nii.gz", "tiny_003_0001.nii.gz"]
    _assert_geometry(sitk.ReadImage(str(raw.image_file("tiny_003", 1, ".nii.gz", split="Ts"))))
    assert len(list(raw.images("Tr").iterdir())) == 6 and len(list(raw.labels("Tr").iterdir())) == 3  # no junk
    assert json.loads(raw.dataset_json.read_text()) == {
        "name": "TINY", "channel_names": {"0": "FLAIR", "1": "T1w"},
        "labels": {"background": 0, "edema": 1, "tumour": 2}, "numTraining": 3, "file_ending": ".nii.gz",
        "description": "tiny test task", "reference": "nobody", "licence": "CC-BY-SA 4.0", "release": "1.0"}
    spec, cases = verify_dataset(out, processes=1)
    assert spec.channel_names == ("FLAIR", "T1w") and [c.case_id for c in cases] == ["tiny_000", "tiny_001", "tiny_002"]
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset007_Tiny"]  # no temporary left


def test_3d_single_modality_task_with_explicit_id_and_workers(tmp_path: Path):
    task = make_task(tmp_path / "msd", "Task04_Hippocampus", modalities=("MRI",), float_labels=True)
    out = convert_msd(task, tmp_path / "raw", dataset_id=123, processes=2)
    assert out.name == "Dataset123_Hippocampus"
    raw = RawPaths(out)
    assert sorted(p.name for p in raw.images("Tr").iterdir()) == [f"tiny_{i:03d}_0000.nii.gz" for i in range(3)]
    source = sitk.ReadImage(str(RawPaths(task).images("Tr") / "tiny_001.nii.gz"))
    channel = sitk.ReadImage(str(raw.image_file("tiny_001", 0, ".nii.gz")))
    _assert_geometry(channel)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(channel), sitk.GetArrayFromImage(source))
    label = sitk.ReadImage(str(raw.label_file("tiny_001", ".nii.gz")))
    assert label.GetPixelID() == sitk.sitkUInt8  # float labels holding integers become integers
    original = sitk.ReadImage(str(RawPaths(task).labels("Tr") / "tiny_001.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(original))
    assert json.loads(raw.dataset_json.read_text())["channel_names"] == {"0": "MRI"}
    verify_dataset(out, processes=1)


def test_every_missing_listed_file_is_reported_and_nothing_written(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    entries = _listed(task)
    missing = [task / entries[0]["label"], task / entries[2]["label"], task / entries[1]["image"]]
    for p in missing:
        p.unlink()
    with pytest.raises(DatasetError) as info:
        convert_msd(task, tmp_path / "raw")
    for p in missing:
        assert str(p) in str(info.value) and "missing" in str(info.value)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_a_modality_count_that_differs_from_the_4th_dimension_is_refused(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    spec = json.loads(RawPaths(task).dataset_json.read_text())
    spec["modality"]["2"] = "T2w"
    RawPaths(task).dataset_json.write_text(json.dumps(spec))
    with pytest.raises(DatasetError) as info:
        convert_msd(task, tmp_path / "raw")
    assert "tiny_000.nii.gz" in str(info.value) and "4th dimension holds 2" in str(info.value)
    assert not any((tmp_path / "raw").iterdir()), "a failed conversion must leave nothing, temporaries included"


def test_an_unreadable_image_is_named(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    broken = task / _listed(task)[1]["image"]
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="unreadable") as info:
        convert_msd(task, tmp_path / "raw")
    assert str(broken) in str(info.value)
    assert not any((tmp_path / "raw").iterdir())


@pytest.mark.parametrize("text,keywords", [
    (None, ["dataset.json", "missing"]),
    ("{not json", ["malformed JSON"]),
    (json.dumps({"labels": LABELS, "training": []}), ["'modality'", "'training'"]),
    (json.dumps({"modality": {"0": "CT"}, "labels": {"zero": "background"},
                 "training": [{"image": "./x/a.nii.gz"}]}), ["label 'zero'", "needs 'image' and 'label'"]),
])
def test_a_missing_or_malformed_dataset_json_is_refused(tmp_path: Path, text: str | None, keywords: list[str]):
    task = make_task(tmp_path / "msd")
    if text is None:
        RawPaths(task).dataset_json.unlink()
    else:
        RawPaths(task).dataset_json.write_text(text)
    with pytest.raises(DatasetError) as info:
        convert_msd(task, tmp_path / "raw")
    assert str(RawPaths(task).dataset_json) in str(info.value)
    for keyword in keywords:
        assert keyword in str(info.value)


def test_a_case_id_that_cannot_be_a_file_name_is_refused(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    spec = json.loads(RawPaths(task).dataset_json.read_text())
    spec["test"].append("./imagesTs/bad name;rm.nii.gz")
    RawPaths(task).dataset_json.write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match="case id 'bad name;rm' cannot be used in a file name"):
        convert_msd(task, tmp_path / "raw")


def test_an_existing_target_is_refused_unless_overwrite(tmp_path: Path):
    task = make_task(tmp_path / "msd")
    out = convert_msd(task, tmp_path / "raw")
    (out / "stale.txt").write_text("from before")
    with pytest.raises(WorkspaceError, match="exists"):
        convert_msd(task, tmp_path / "raw")
    assert (out / "stale.txt").is_file()
    assert convert_msd(task, tmp_path / "raw", overwrite=True) == out
    assert not (out / "stale.txt").exists(), "overwrite replaces the dataset folder as a whole"
    verify_dataset(out, processes=1)
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset007_Tiny"]


def test_another_folder_with_the_same_id_is_never_replaced(tmp_path: Path):
    """--overwrite deleted every DatasetNNN_* with the id, another user's dataset included."""
    task = make_task(tmp_path / "msd")
    other = tmp_path / "raw" / "Dataset007_Other"
    other.mkdir(parents=True)
    (other / "dataset.json").write_text("{}")
    for overwrite in (False, True):
        with pytest.raises(WorkspaceError, match="Dataset007_Other already use.*--overwrite replaces only "
                                                 "Dataset007_Tiny"):
            convert_msd(task, tmp_path / "raw", overwrite=overwrite)
    assert (other / "dataset.json").read_text() == "{}"
    assert convert_msd(task, tmp_path / "raw", dataset_id=8).name == "Dataset008_Tiny"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["Dataset007_Other", "Dataset008_Tiny"]


@pytest.mark.parametrize("name,error", [("Hippocampus", DatasetError), ("Task_Hippocampus", DatasetError),
                                        ("TaskAB_Hippocampus", DatasetError), ("Task04_Hippo campus", WorkspaceError)])
def test_a_bad_task_folder_name_is_refused(tmp_path: Path, name: str, error: type[Exception]):
    task = make_task(tmp_path / "msd", name=name)
    with pytest.raises(error, match="Task|task name"):
        convert_msd(task, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
