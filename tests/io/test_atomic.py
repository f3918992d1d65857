"""Atomic writes: whole files or none, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from autounet.io.atomic import atomic_path, check_writable, copy_file, write_json, write_npy


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_permissions_of_the_umask(tmp_path: Path, umask: int):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_npy(tmp_path / "b.npy", np.zeros(3))
        copy_file(tmp_path / "a.json", tmp_path / "c.json")
    finally:
        os.umask(old)
    for name in ("a.json", "b.npy", "c.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "x.json"
    write_json(target, {"old": True})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and "old" in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_check_writable_writes_nothing_and_names_the_blocking_path(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    with pytest.raises(NotADirectoryError) as info:
        check_writable(tmp_path / "file" / "below")
    assert info.value.filename == str(tmp_path / "file")
