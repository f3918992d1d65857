"""Every kind of broken raw dataset is refused before anything is written, with a clear message.

Each test builds a tiny dataset (tests/conftest.py), breaks it in one way and runs
``plan_and_preprocess``; the error must name the offending file and the problem, and the
workspace must not get a ``preprocessed`` folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from autounet import api
from autounet.errors import DatasetError, DatasetVerificationError
from autounet.io.image_io import read_image
from autounet.io.verify import load_case, verify_dataset

# ----------------------------------------------------------------------------------------------
# helpers


def plan_fails(raw: Path, tmp_path: Path, error: type[DatasetError] = DatasetVerificationError) -> DatasetError:
    """Run plan_and_preprocess on a broken dataset: it must raise and write nothing."""
    ws = tmp_path / "ws"
    with pytest.raises(error) as info:
        api.plan_and_preprocess(raw, root=ws, processes=1)
    assert not (ws / "preprocessed").exists(), "a failed verification must not write anything"
    return info.value


def assert_reported(err: DatasetError, file_name: str, *keywords: str) -> str:
    """One problem of ``err`` names ``file_name`` and every keyword (case-insensitive); returns it."""
    text = str(err)
    assert file_name in text, f"{file_name!r} not named in:\n{text}"
    problems = err.problems if isinstance(err, DatasetVerificationError) else text.splitlines()
    for p in problems:
        if file_name in p and all(k.lower() in p.lower() for k in keywords):
            return p
    raise AssertionError(f"no problem names {file_name!r} with {keywords}; problems:\n" + "\n".join(problems))


def rewrite(path: Path, change: Callable[[sitk.Image], sitk.Image]) -> None:
    """Read an image with SimpleITK, change it, write it back under the same name."""
    sitk.WriteImage(change(sitk.ReadImage(str(path))), str(path), useCompression=True)


def with_array(img: sitk.Image, arr: np.ndarray) -> sitk.Image:
    """A new image holding ``arr`` with ``img``'s spacing, origin and direction."""
    out = sitk.GetImageFromArray(arr)
    out.SetSpacing(img.GetSpacing())
    out.SetOrigin(img.GetOrigin())
    out.SetDirection(img.GetDirection())
    return out


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_json(raw: Path, change: Callable[[dict], None]) -> None:
    path = raw / "dataset.json"
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj, indent=2))


# ----------------------------------------------------------------------------------------------
# valid datasets


def test_valid_3d_dataset_passes_verification(tiny_3d: Path):
    before = sorted(p.relative_to(tiny_3d) for p in tiny_3d.rglob("*"))
    spec, cases = verify_dataset(tiny_3d)
    assert len(cases) == 6 and spec.channel_names == ("T1", "T2")
    assert all(len(c.images) == 2 and c.label is not None for c in cases)
    assert sorted(p.relative_to(tiny_3d) for p in tiny_3d.rglob("*")) == before  # nothing written


def test_valid_2d_dataset_passes_verification(tiny_2d: Path):
    spec, cases = verify_dataset(tiny_2d)
    assert len(cases) == 6 and spec.reader == "natural2d"


def test_rgb_png_dataset_is_read_as_three_channels(tiny_rgb: Path):
    spec, cases = verify_dataset(tiny_rgb)
    assert len(spec.channel_names) == 3
    assert all(len(c.images) == 1 for c in cases)  # one RGB file per case
    arr, geo = read_image(cases[0].images[0], spec.reader)
    assert arr.shape[0] == 3 and arr.shape[1] == 1 and geo.file_dims == 2
    loaded, problems = load_case(cases[0], spec)
    assert problems == [] and loaded is not None
    assert loaded.images.shape[0] == 3 and loaded.images.shape[1:] == loaded.seg.shape


def test_rgb_png_fingerprint_has_three_channels(tiny_rgb: Path):
    from autounet.autoplan.fingerprint import extract_fingerprint

    fp = extract_fingerprint(tiny_rgb, processes=1)
    assert len(fp.channel_names) == 3 and len(fp.intensity) == 3 and fp.file_dims == 2


# ----------------------------------------------------------------------------------------------
# missing files


def test_missing_channel_file(tiny_3d: Path, tmp_path: Path):
    (tiny_3d / "imagesTr" / "case_000_0001.nii.gz").unlink()
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_000_0001.nii.gz", "missing", "channel")


def test_missing_label_file(tiny_3d: Path, tmp_path: Path):
    (tiny_3d / "labelsTr" / "case_002.nii.gz").unlink()
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_002.nii.gz", "missing", "label")


def test_missing_label_file_2d(tiny_2d: Path, tmp_path: Path):
    (tiny_2d / "labelsTr" / "case_004.png").unlink()
    err = plan_fails(tiny_2d, tmp_path)
    assert_reported(err, "case_004.png", "missing", "label")


def test_label_without_images(tiny_3d: Path, tmp_path: Path):
    shutil.copy(tiny_3d / "labelsTr" / "case_000.nii.gz", tiny_3d / "labelsTr" / "case_099.nii.gz")
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_099.nii.gz", "label without images")


# ----------------------------------------------------------------------------------------------
# file contents


def test_undeclared_label_value(tiny_3d: Path, tmp_path: Path):
    def add_seven(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img)
        arr[1, 2, 3] = 7
        return with_array(img, arr)

    rewrite(tiny_3d / "labelsTr" / "case_003.nii.gz", add_seven)
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "case_003.nii.gz", "not declared")
    assert "[7]" in problem


@pytest.mark.parametrize("value, dtype", [(65535, np.uint16), (65537, np.int32), (-40000, np.int32)],
                         ids=["uint16-65535", "int32-65537", "int32-negative"])
def test_undeclared_label_values_are_reported_as_they_are_in_the_file(tiny_3d: Path, tmp_path: Path, value, dtype):
    """Labels were cast to int16: a 16-bit mask's 65535 was reported as -1 and 65537 became 1, silently."""
    def put(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img).astype(dtype)
        arr[1, 2, 3] = value
        return with_array(img, arr)

    rewrite(tiny_3d / "labelsTr" / "case_003.nii.gz", put)
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "case_003.nii.gz", "not declared")
    assert f"[{value}]" in problem


def _smaller(img: sitk.Image) -> sitk.Image:
    return with_array(img, sitk.GetArrayFromImage(img)[:, :-1])


def _spacing(img: sitk.Image) -> sitk.Image:
    img.SetSpacing([s * 1.1 for s in img.GetSpacing()])
    return img


def _origin(img: sitk.Image) -> sitk.Image:
    img.SetOrigin([o + 5.0 for o in img.GetOrigin()])
    return img


def _direction(img: sitk.Image) -> sitk.Image:
    img.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))  # x and y swapped
    return img


@pytest.mark.parametrize("target", ["imagesTr/case_002_0001.nii.gz", "labelsTr/case_002.nii.gz"],
                         ids=["between_channels", "image_vs_label"])
@pytest.mark.parametrize("change, keyword", [(_smaller, "shape"), (_spacing, "spacing"), (_origin, "origin"),
                                             (_direction, "direction")],
                         ids=["shape", "spacing", "origin", "direction"])
def test_geometry_mismatch(tiny_3d: Path, tmp_path: Path, target: str, change, keyword: str):
    rewrite(tiny_3d / target, change)
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, Path(target).name, keyword)
    assert "case_002_0000.nii.gz" in problem  # the file it was compared with
    assert len(err.problems) == 1, err.problems  # only the changed property is reported


@pytest.mark.parametrize("value, keyword", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")],
                         ids=["nan", "inf", "-inf"])
def test_non_finite_voxels(tiny_3d: Path, tmp_path: Path, value: float, keyword: str):
    path = tiny_3d / "imagesTr" / "case_004_0000.nii.gz"

    def poison(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img).astype(np.float32)
        arr[2, 3, 4] = value
        out = with_array(img, arr)
        assert out.GetPixelID() == sitk.sitkFloat32
        return out

    rewrite(path, poison)
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "case_004_0000.nii.gz", keyword)
    assert "1 NaN or Inf voxel" in problem


def test_non_finite_voxels_in_uncompressed_nifti(tmp_path: Path):
    from autounet.example_data import make_example_dataset

    raw = make_example_dataset(tmp_path / "raw" / "Dataset004_Nii", dims=3, cases=3, channels=1,
                               shape=(8, 16, 16), test_cases=1)
    for p in sorted(raw.glob("*Tr/*.nii.gz")):  # the same dataset as plain .nii
        sitk.WriteImage(sitk.ReadImage(str(p)), str(p.with_name(p.name[:-3])))
        p.unlink()
    edit_json(raw, lambda d: d.update(file_ending=".nii"))
    path = raw / "imagesTr" / "case_001_0000.nii"
    ref = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(ref).astype(np.float32)
    arr[0, 0, 0] = np.nan
    sitk.WriteImage(with_array(ref, arr), str(path))
    err = plan_fails(raw, tmp_path)
    assert_reported(err, "case_001_0000.nii", "NaN")
    assert len(err.problems) == 1, err.problems


@pytest.mark.parametrize("name", ["imagesTr/case_001_0000.nii.gz", "labelsTr/case_001.nii.gz"],
                         ids=["image", "label"])
def test_truncated_nifti(tiny_3d: Path, tmp_path: Path, name: str):
    truncate(tiny_3d / name)
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, Path(name).name, "truncated")


@pytest.mark.parametrize("name", ["imagesTr/case_001_0000.png", "labelsTr/case_001.png"], ids=["image", "label"])
def test_truncated_png(tiny_2d: Path, tmp_path: Path, name: str):
    truncate(tiny_2d / name)
    err = plan_fails(tiny_2d, tmp_path)
    assert_reported(err, Path(name).name, "truncated")


def test_unreadable_file(tiny_3d: Path, tmp_path: Path):
    (tiny_3d / "imagesTr" / "case_005_0001.nii.gz").write_bytes(b"this is not an image")
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_005_0001.nii.gz", "unreadable")


def test_4d_image(tiny_3d: Path, tmp_path: Path):
    img = sitk.GetImageFromArray(np.zeros((2, 4, 5, 6), np.float32), isVector=False)
    assert img.GetDimension() == 4
    path = tiny_3d / "imagesTr" / "case_001_0000.nii.gz"
    sitk.WriteImage(img, str(path))
    assert sitk.ReadImage(str(path)).GetDimension() == 4
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_001_0000.nii.gz", "4D")


# ----------------------------------------------------------------------------------------------
# file names


@pytest.mark.parametrize("name", ["case_000_0000.nrrd", "notes.txt"])
def test_wrong_file_ending_in_images(tiny_3d: Path, tmp_path: Path, name: str):
    path = tiny_3d / "imagesTr" / name
    if name.endswith(".nrrd"):
        sitk.WriteImage(sitk.ReadImage(str(tiny_3d / "imagesTr" / "case_000_0000.nii.gz")), str(path))
    else:
        path.write_text("not an image\n")
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, name, "ending")
    assert ".nii.gz" in problem  # says which ending is expected


def test_wrong_file_ending_in_labels(tiny_3d: Path, tmp_path: Path):
    (tiny_3d / "labelsTr" / "case_000.txt").write_text("not a label\n")
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_000.txt", "ending")


def test_duplicate_case_id_in_explicit_dataset_object(tiny_3d: Path, tmp_path: Path):
    def entry(i: int) -> str:
        return (f'"case_{i:03d}": {{"images": ["imagesTr/case_{i:03d}_0000.nii.gz", "imagesTr/case_{i:03d}_0001.nii.gz"], '
                f'"label": "labelsTr/case_{i:03d}.nii.gz"}}')

    path = tiny_3d / "dataset.json"
    head = path.read_text().rstrip().removesuffix("}").rstrip()
    # the same key twice: json.loads would silently keep the last one
    path.write_text(head + ',\n"dataset": {' + ", ".join([entry(i) for i in range(6)] + [entry(2)]) + "}\n}\n")
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "dataset.json", "duplicate")
    assert "case_002" in problem


def test_explicit_dataset_object_without_duplicates_is_accepted(tiny_3d: Path):
    edit_json(tiny_3d, lambda d: d.update(dataset={
        f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz", f"imagesTr/case_{i:03d}_0001.nii.gz"],
                          "label": f"labelsTr/case_{i:03d}.nii.gz"} for i in range(6)}))
    spec, cases = verify_dataset(tiny_3d)
    assert [c.case_id for c in cases] == [f"case_{i:03d}" for i in range(6)]


def test_case_ids_differing_only_in_letter_case(tiny_3d: Path, tmp_path: Path):
    for c in range(2):
        (tiny_3d / "imagesTr" / f"case_005_{c:04d}.nii.gz").rename(tiny_3d / "imagesTr" / f"CASE_004_{c:04d}.nii.gz")
    (tiny_3d / "labelsTr" / "case_005.nii.gz").rename(tiny_3d / "labelsTr" / "CASE_004.nii.gz")
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "CASE_004_0000.nii.gz", "duplicate")
    assert "case_004_0000.nii.gz" in problem and "letter case" in problem
    assert len(err.problems) == 1, err.problems


# ----------------------------------------------------------------------------------------------
# dataset.json


def test_dataset_json_missing(tiny_3d: Path, tmp_path: Path):
    (tiny_3d / "dataset.json").unlink()
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "dataset.json", "missing")


def test_dataset_json_malformed(tiny_3d: Path, tmp_path: Path):
    path = tiny_3d / "dataset.json"
    path.write_text(path.read_text().rstrip()[:-1])  # the closing brace is gone
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "dataset.json", "malformed")


def test_dataset_json_missing_required_keys(tiny_3d: Path, tmp_path: Path):
    edit_json(tiny_3d, lambda d: (d.pop("labels"), d.pop("file_ending")))
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "dataset.json", "missing", "labels")
    assert "file_ending" in problem


@pytest.mark.parametrize("num_training", [4, 9])
def test_num_training_inconsistent_with_files(tiny_3d: Path, tmp_path: Path, num_training: int):
    edit_json(tiny_3d, lambda d: d.update(numTraining=num_training))
    err = plan_fails(tiny_3d, tmp_path)
    problem = assert_reported(err, "dataset.json", "numTraining")
    assert str(num_training) in problem and "6" in problem


def test_more_channels_declared_than_files(tiny_3d: Path, tmp_path: Path):
    edit_json(tiny_3d, lambda d: d["channel_names"].update({"2": "FLAIR"}))
    err = plan_fails(tiny_3d, tmp_path)
    for i in range(6):
        assert_reported(err, f"case_{i:03d}_0002.nii.gz", "missing", "channel", "3")
    assert len(err.problems) == 6, err.problems


def test_fewer_channels_declared_than_files(tiny_3d: Path, tmp_path: Path):
    edit_json(tiny_3d, lambda d: d["channel_names"].pop("1"))
    err = plan_fails(tiny_3d, tmp_path)
    assert_reported(err, "case_000_0001.nii.gz", "channel", "declares 1")


def test_channel_count_inconsistent_in_png_dataset(tiny_2d: Path, tmp_path: Path):
    edit_json(tiny_2d, lambda d: d["channel_names"].update({"1": "red"}))
    err = plan_fails(tiny_2d, tmp_path)
    assert_reported(err, "case_000_0000.png", "channel", "declares 2")


# ----------------------------------------------------------------------------------------------
# everything at once


def test_three_problems_are_reported_in_one_error(tiny_3d: Path, tmp_path: Path):
    # a layout problem (missing file) and two problems inside files, in three different cases
    (tiny_3d / "imagesTr" / "case_000_0001.nii.gz").unlink()

    def poison(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img).astype(np.float32)
        arr[0, 0, 0] = np.nan
        return with_array(img, arr)

    def add_seven(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img)
        arr[1, 1, 1] = 7
        return with_array(img, arr)

    rewrite(tiny_3d / "imagesTr" / "case_001_0000.nii.gz", poison)
    rewrite(tiny_3d / "labelsTr" / "case_002.nii.gz", add_seven)
    err = plan_fails(tiny_3d, tmp_path)
    assert isinstance(err, DatasetVerificationError)
    assert len(err.problems) == 3, err.problems
    assert_reported(err, "case_000_0001.nii.gz", "missing")
    assert_reported(err, "case_001_0000.nii.gz", "NaN")
    assert_reported(err, "case_002.nii.gz", "not declared")
    # the CLI's verify command reports the same three
    with pytest.raises(DatasetVerificationError) as info:
        api.verify_dataset(tiny_3d, root=tmp_path / "ws", processes=1)
    assert sorted(info.value.problems) == sorted(err.problems)


def test_three_content_problems_are_reported_in_one_error(tiny_3d: Path, tmp_path: Path):
    rewrite(tiny_3d / "labelsTr" / "case_001.nii.gz", _spacing)
    rewrite(tiny_3d / "imagesTr" / "case_003_0001.nii.gz", _origin)
    truncate(tiny_3d / "imagesTr" / "case_005_0000.nii.gz")
    err = plan_fails(tiny_3d, tmp_path)
    assert len(err.problems) == 3, err.problems
    assert_reported(err, "case_001.nii.gz", "spacing")
    assert_reported(err, "case_003_0001.nii.gz", "origin")
    assert_reported(err, "case_005_0000.nii.gz", "truncated")
