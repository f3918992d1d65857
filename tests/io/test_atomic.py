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


def test_only_temporaries_of_writers_that_are_gone_are_removed(tmp_path: Path):
    """Safe while others write: a live process's temporary stays, a killed one's goes (files and
    folders, below the folder too), an older autounet's goes."""
    import subprocess
    import sys

    from autounet.io.atomic import _new_temporary, remove_stale_temporaries

    live = _new_temporary(tmp_path / "summary.json")                      # this process: still writing
    (tmp_path / "sub").mkdir()
    gone = subprocess.run([sys.executable, "-c", "from pathlib import Path; from autounet.io.atomic import "
                           f"_new_temporary; print(_new_temporary(Path({str(tmp_path / 'sub' / 'a.npz')!r})))"],
                          capture_output=True, text=True, check=True)  # its writer has ended
    folder = _new_temporary(tmp_path / "dataset", folder=True)
    (folder / "x").write_text("half")
    old = tmp_path / ".plans.json.deadbeef.tmp"
    old.write_text("half")
    assert remove_stale_temporaries(tmp_path) == 1 and not old.exists() and live.exists() and folder.exists()
    assert remove_stale_temporaries(tmp_path, recursive=True) == 1
    assert not Path(gone.stdout.strip()).exists() and live.exists()
