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
