"""Which folders the workspace uses: --root, $AUTOUNET_ROOT, nnU-Net's variables, the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet.errors import WorkspaceError
from autounet.workspace import dataset_paths, describe_roots, resolve_dataset, workspace_roots

NAME = "Dataset902_X"


def _nnunet_env(tmp_path: Path, *kinds: str) -> dict[str, str]:
    """nnUNet_raw plus the named output variables, each pointing at a folder in tmp_path."""
    return {f"nnUNet_{kind}": str(tmp_path / f"nn_{kind}") for kind in ("raw", *kinds)}


def test_root_argument_wins_over_both_variables(tmp_path: Path):
    env = {"AUTOUNET_ROOT": str(tmp_path / "env_root"), **_nnunet_env(tmp_path, "preprocessed", "results")}
    roots = workspace_roots(tmp_path / "arg_root", env)
    assert (roots.raw, roots.source) == (tmp_path / "arg_root" / "raw", "--root")
    assert roots.dataset(NAME).results == tmp_path / "arg_root" / "results" / NAME


def test_autounet_root_wins_over_nnunet_raw(tmp_path: Path):
    env = {"AUTOUNET_ROOT": str(tmp_path / "env_root"), **_nnunet_env(tmp_path, "preprocessed", "results")}
    roots = workspace_roots(None, env)
    assert (roots.raw, roots.source) == (tmp_path / "env_root" / "raw", "$AUTOUNET_ROOT")
    paths = roots.dataset(NAME)
    assert paths.preprocessed == tmp_path / "env_root" / "preprocessed" / NAME
    assert paths.results == tmp_path / "env_root" / "results" / NAME


def test_no_variables_mean_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    roots = workspace_roots(None, {})
    assert (roots.raw, roots.source) == (tmp_path / "raw", "the current directory")
    assert roots.dataset(NAME).preprocessed == tmp_path / "preprocessed" / NAME


def test_nnunet_raw_alone_keeps_outputs_in_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    roots = workspace_roots(None, _nnunet_env(tmp_path))
    assert (roots.raw, roots.source) == (tmp_path / "nn_raw", "$nnUNet_raw")
    paths = roots.dataset(NAME)
    assert paths.raw == tmp_path / "nn_raw" / NAME
    assert paths.preprocessed == tmp_path / "preprocessed" / NAME
    assert paths.results == tmp_path / "results" / NAME


def test_all_three_nnunet_variables_put_outputs_in_autounet_subfolders(tmp_path: Path):
    paths = workspace_roots(None, _nnunet_env(tmp_path, "preprocessed", "results")).dataset(NAME)
    assert paths.raw == tmp_path / "nn_raw" / NAME
    assert paths.preprocessed == tmp_path / "nn_preprocessed" / NAME / "autounet"
    assert paths.results == tmp_path / "nn_results" / NAME / "autounet"
    assert paths.plans == tmp_path / "nn_preprocessed" / NAME / "autounet" / "plans.json"


def test_output_variables_without_nnunet_raw_are_ignored(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = _nnunet_env(tmp_path, "preprocessed", "results")
    del env["nnUNet_raw"]
    assert workspace_roots(None, env).dataset(NAME).results == tmp_path / "results" / NAME


def test_dataset_id_resolves_under_nnunet_raw(tmp_path: Path, monkeypatch):
    for name, value in _nnunet_env(tmp_path, "preprocessed", "results").items():
        monkeypatch.setenv(name, value)
    (tmp_path / "nn_raw" / NAME).mkdir(parents=True)
    for dataset in ("902", 902, NAME):
        paths = resolve_dataset(dataset)
        assert (paths.name, paths.raw) == (NAME, tmp_path / "nn_raw" / NAME)
        assert paths.results == tmp_path / "nn_results" / NAME / "autounet"
    assert dataset_paths(None, NAME) == paths


def test_raw_folder_path_keeps_the_nnunet_output_roots(tmp_path: Path, monkeypatch):
    for name, value in _nnunet_env(tmp_path, "preprocessed", "results").items():
        monkeypatch.setenv(name, value)
    raw = tmp_path / "elsewhere" / NAME
    raw.mkdir(parents=True)
    paths = resolve_dataset(raw)
    assert paths.raw == raw
    assert paths.preprocessed == tmp_path / "nn_preprocessed" / NAME / "autounet"


def test_root_argument_ignores_nnunet_raw(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "nn_raw"))
    (tmp_path / "nn_raw" / NAME).mkdir(parents=True)
    with pytest.raises(WorkspaceError, match=r"no dataset with id 902 in .*ws.raw \(--root\)"):
        resolve_dataset("902", tmp_path / "ws")
    assert dataset_paths(tmp_path / "ws", NAME).raw == tmp_path / "ws" / "raw" / NAME


def test_missing_id_names_nnunet_raw(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "nn_raw"))
    with pytest.raises(WorkspaceError, match=r"no dataset with id 902 in .*nn_raw \(\$nnUNet_raw\)"):
        resolve_dataset("902")
    with pytest.raises(WorkspaceError, match=r"Dataset902_Y.*nn_raw \(\$nnUNet_raw\)"):
        resolve_dataset("Dataset902_Y")


def test_dataset_names_are_still_checked(tmp_path: Path):
    roots = workspace_roots(None, _nnunet_env(tmp_path, "results"))
    with pytest.raises(WorkspaceError, match="dataset name"):
        roots.dataset("../escape")


def test_describe_roots_names_the_folders(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = describe_roots(workspace_roots(None, _nnunet_env(tmp_path, "results")))
    assert line.startswith("nnU-Net folders: raw $nnUNet_raw=")
    assert str(tmp_path / "nn_raw") in line
    assert str(tmp_path / "nn_results" / "NAME" / "autounet") in line
    assert f"{tmp_path / 'preprocessed' / 'NAME'} ($nnUNet_preprocessed not set" in line
    assert "\n" not in line
    plain = describe_roots(workspace_roots(tmp_path / "ws", {}))
    assert "(--root)" in plain and str(tmp_path / "ws" / "raw") in plain
