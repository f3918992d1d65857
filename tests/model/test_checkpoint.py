"""Checkpoints: read only with weights_only, so that a file a user is handed cannot run code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from autounet.model.checkpoint import load_checkpoint, peek_checkpoint


class _RunsCode:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_pickled_code_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoint_final.pt"
    path.write_bytes(pickle.dumps({"network": _RunsCode(), "plans": "{}"}, protocol=2))
    for read in (load_checkpoint, peek_checkpoint):
        with pytest.raises(ValueError, match="checkpoint_final.pt: not a readable autounet checkpoint"):
            read(path)
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_checkpoint_names_the_file(tmp_path: Path):
    path = tmp_path / "checkpoint_latest.pt"
    path.write_bytes(b"PK\x03\x04 half a checkpoint")
    with pytest.raises(ValueError, match="checkpoint_latest.pt: not a readable autounet checkpoint"):
        load_checkpoint(path)


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(tmp_path: Path, monkeypatch):
    """torch.save on a full disk raises RuntimeError("PytorchStreamWriter failed writing file"),
    which escaped the command line as a traceback."""
    import errno
    import shutil

    import torch

    from autounet.model.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint_latest.pt"
    save_checkpoint(path, {"network": {"w": torch.ones(2)}, "plans": "{}"})

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(OSError) as e:
        save_checkpoint(path, {"network": {"w": torch.zeros(2)}, "plans": "{}"})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path) and "disk full" in str(e.value)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["network"]["w"], torch.ones(2))  # the previous one, intact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
