"""dataset.json: every malformed or inconsistent file gives a DatasetError naming it, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.errors import DatasetError
from autounet.io.dataset_json import load_dataset_json

VALID = {
    "name": "Dataset010_Json",
    "channel_names": {"0": "T1", "1": "T2"},
    "labels": {"background": 0, "organ": 1, "lesion": 2},
    "numTraining": 4,
    "file_ending": ".nii.gz",
}


def write(tmp_path: Path, obj=None, text: str | None = None) -> Path:
    folder = tmp_path / "Dataset010_Json"
    folder.mkdir(exist_ok=True)
    (folder / "dataset.json").write_text(text if text is not None else json.dumps(obj))
    return folder


def fails(folder: Path, *keywords: str) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset_json(folder)
    msg = str(info.value)
    assert "dataset.json" in msg
    for k in keywords:
        assert k.lower() in msg.lower(), f"{k!r} not in {msg!r}"
    return msg


def test_valid_dataset_json(tmp_path: Path):
    spec = load_dataset_json(write(tmp_path, VALID))
    assert spec.channel_names == ("T1", "T2") and spec.num_training == 4 and spec.reader == "simpleitk"
    assert spec.allowed_label_values == {0, 1, 2} and spec.foreground_labels == (1, 2) and spec.cases is None


def test_nnunet_v1_modality_key_is_accepted(tmp_path: Path):
    obj = {k: v for k, v in VALID.items() if k != "channel_names"} | {"modality": {"0": "CT"}}
    assert load_dataset_json(write(tmp_path, obj)).channel_names == ("CT",)


def test_missing(tmp_path: Path):
    folder = tmp_path / "Dataset010_Json"
    folder.mkdir()
    fails(folder, "missing")


def test_malformed(tmp_path: Path):
    fails(write(tmp_path, text=json.dumps(VALID)[:-1]), "malformed")


def test_not_text(tmp_path: Path):
    folder = write(tmp_path, VALID)
    (folder / "dataset.json").write_bytes(b"\xff\xfe\x00garbage")
    fails(folder)


def test_top_level_not_an_object(tmp_path: Path):
    fails(write(tmp_path, [VALID]), "object")


def test_every_missing_key_is_named(tmp_path: Path):
    msg = fails(write(tmp_path, {"name": "x"}), "missing")
    for key in ("channel_names", "labels", "numTraining", "file_ending"):
        assert key in msg


def test_duplicate_key(tmp_path: Path):
    text = json.dumps(VALID)[:-1] + ', "labels": {"background": 0}}'
    fails(write(tmp_path, text=text), "duplicate", "labels")


def test_duplicate_case_in_dataset_list(tmp_path: Path):
    entry = {"case": "a", "images": ["imagesTr/a_0000.nii.gz", "imagesTr/a_0001.nii.gz"], "label": "labelsTr/a.nii.gz"}
    fails(write(tmp_path, VALID | {"dataset": [entry, dict(entry)]}), "duplicate case id 'a'")


@pytest.mark.parametrize("change, keywords", [
    ({"file_ending": 5}, ("file_ending",)),
    ({"file_ending": "nii.gz"}, ("file_ending",)),
    ({"file_ending": ".txt"}, ("not supported",)),
    ({"overwrite_image_reader_writer": ["SimpleITKIO"]}, ("overwrite_image_reader_writer",)),
    ({"overwrite_image_reader_writer": "NoSuchIO"}, ("overwrite_image_reader_writer",)),
    ({"numTraining": True}, ("numTraining",)),
    ({"numTraining": 0}, ("numTraining",)),
    ({"numTraining": "4"}, ("numTraining",)),
    ({"channel_names": ["T1", "T2"]}, ("channel_names",)),
    ({"channel_names": {}}, ("channel_names",)),
    ({"channel_names": {"a": "T1"}}, ("channel_names", "indices")),
    ({"channel_names": {"0": "T1", "2": "T2"}}, ("channel_names",)),
    ({"labels": [0, 1]}, ("labels",)),
    ({"labels": {"organ": 1}}, ("background",)),
    ({"labels": {"background": 0, "organ": "1"}}, ("organ",)),
    ({"labels": {"background": 0, "organ": True}}, ("organ",)),
    ({"labels": {"background": 0, "organ": 1, "lesion": 1}}, ("share",)),
    ({"labels": {"background": 0, "ignore": 1, "organ": 2}}, ("ignore", "highest")),
    ({"labels": {"background": 0, "organ": [1, 2], "lesion": 2}}, ("regions_class_order",)),
    ({"labels": {"background": 0, "organ": [1, 2], "lesion": 2}, "regions_class_order": ["x", "y"]},
     ("regions_class_order",)),
    ({"dataset": "all"}, ("'dataset'",)),
    ({"dataset": {"a": {"images": [5], "label": "labelsTr/a.nii.gz"}}}, ("'dataset' entry 'a'",)),
    ({"dataset": {"a": {"images": ["imagesTr/a_0000.nii.gz"], "label": 3}}}, ("'dataset' entry 'a'",)),
    ({"dataset": {"a": {"images": "imagesTr/a_0000.nii.gz", "label": "labelsTr/a.nii.gz"}}}, ("'dataset' entry 'a'",)),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else "")
def test_bad_values_give_a_clear_error(tmp_path: Path, change: dict, keywords: tuple[str, ...]):
    fails(write(tmp_path, VALID | change), *keywords)


def test_several_problems_are_reported_together(tmp_path: Path):
    msg = fails(write(tmp_path, VALID | {"numTraining": 0, "channel_names": {}, "file_ending": "nii"}))
    assert len(msg.splitlines()) == 3 and "numTraining" in msg and "channel_names" in msg and "file_ending" in msg


def test_region_labels_with_order_are_accepted(tmp_path: Path):
    spec = load_dataset_json(write(tmp_path, VALID | {"labels": {"background": 0, "whole": [1, 2], "core": 2},
                                                      "regions_class_order": [1, 2]}))
    assert spec.has_regions and spec.regions_class_order == (1, 2) and spec.allowed_label_values == {0, 1, 2}
