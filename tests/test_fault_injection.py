"""Fault injection: ``autounet run`` on a tiny dataset, stopped by SIGKILL or SIGTERM at 13 points
(20 with ``-m slow``) across preprocessing, training, checkpoints, validation, the run's ledger,
selection and the report, then run again. Every rerun ends as the uninterrupted run does (same chosen
configuration, same final checkpoints), with no process left behind and no temporary file. And
two runs started together on one dataset: one works, the other waits, same result.

The dataset has two folds (a splits.json written before the run) to keep the suite at a few
minutes: about 10 s a run on a 2-core CPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from autounet import api
from autounet.io.atomic import read_json, write_json
from autounet.model import checkpoint as ckpt

NAME = "Dataset907_Faults"
RUN = ["run", "--epochs", "2", "--iterations-per-epoch", "2", "-p", "1", "--device", "cpu", "--no-amp"]

# (the function where it is looked up, which call, the signal): the process signals itself there
POINTS = [
    ("autounet.preprocess.pipeline.write_npy", 3, "SIGKILL"),           # between a case's arrays
    ("autounet.preprocess.pipeline.write_json", 4, "SIGTERM"),          # a case's metadata
    ("torch.nn.utils.clip_grad_norm_", 1, "SIGKILL"),                   # training steps
    ("torch.nn.utils.clip_grad_norm_", 5, "SIGTERM"),                   # fold 1's first step
    ("torch.nn.utils.clip_grad_norm_", 8, "SIGTERM"),                   # the last step
    ("autounet.training.loop.save_checkpoint", 1, "SIGKILL"),           # best/latest checkpoints
    ("autounet.training.fold.save_checkpoint", 2, "SIGKILL"),           # a final checkpoint
    ("autounet.inference.run._write", 2, "SIGTERM"),                    # validation outputs
    ("autounet.training.validation.write_json", 1, "SIGTERM"),          # a fold's validation summary
    ("autounet.runner.ledger.write_json", 2, "SIGKILL"),                # run.json
    ("autounet.postprocess.find_best.write_json", 1, "SIGTERM"),        # the selection
    ("autounet.postprocess.selection.write_json", 1, "SIGKILL"),        # the postprocessing rules
    ("autounet.runner.pipeline.write_report", 1, "SIGTERM"),            # the report
]
# more points of the same functions (other steps and checkpoints, the other signal): `pytest -m slow`,
# to keep the default suite's share of this module at about two and a half minutes
SLOW_POINTS = [
    ("torch.nn.utils.clip_grad_norm_", 2, "SIGTERM"),
    ("torch.nn.utils.clip_grad_norm_", 3, "SIGKILL"),
    ("torch.nn.utils.clip_grad_norm_", 7, "SIGKILL"),
    ("autounet.training.loop.save_checkpoint", 3, "SIGTERM"),
    ("autounet.training.fold.save_checkpoint", 1, "SIGTERM"),
    ("autounet.inference.run._write", 1, "SIGKILL"),
    ("autounet.inference.run._write", 5, "SIGKILL"),
]

_INJECT = textwrap.dedent("""
    import importlib, os, signal, sys
    from autounet.cli import main
    where, at, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
    module_name, name = where.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real, calls = getattr(module, name), {"n": 0}
    def hooked(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)
    setattr(module, name, hooked)
    sys.exit(main(sys.argv[4:]))
""")


def _run(root: Path, inject: tuple[str, int, str] | None = None) -> subprocess.CompletedProcess:
    args = [*RUN[:1], str(root / "raw" / NAME), "--root", str(root), *RUN[1:]]
    command = [sys.executable, "-c", _INJECT, *map(str, inject), *args] if inject else \
        [sys.executable, "-m", "autounet", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=300)
    left = _session_members(proc.pid)
    assert not left, f"processes left behind after exit {proc.returncode}: {left}\n{err[-2000:]}"
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _session_members(sid: int) -> list[str]:
    """Live processes of session ``sid`` (Linux /proc); a zombie nobody reaped counts as gone."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(stat.split(")")[0] + ")")
    return members


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory) -> tuple[Path, Path]:
    """A template workspace (the raw dataset and a two-fold split) and the uninterrupted run's."""
    template = tmp_path_factory.mktemp("faults") / "template"
    raw = api.make_example_dataset(template / "raw" / NAME, dims=2, cases=6, shape=(32, 32), test_cases=1)
    ids = sorted(p.name.removesuffix(".png") for p in (raw / "labelsTr").iterdir())
    write_json(template / "preprocessed" / NAME / "splits.json",
               [{"train": ids[3:], "val": ids[:3]}, {"train": ids[:3], "val": ids[3:]}])
    reference = template.parent / "reference"
    shutil.copytree(template, reference)
    done = _run(reference)
    assert done.returncode == 0, done.stderr[-3000:]
    return template, reference


def _same_result(root: Path, reference: Path) -> None:
    """The chosen configuration, the final weights (within float32 noise: the number of threads,
    set from the machine's load, moved weights by up to 3e-6 here; the last epoch's two steps move
    the largest weight by 1.4e-2) and the validation scores of the uninterrupted run."""
    results, expected = root / "results" / NAME, reference / "results" / NAME
    assert read_json(results / "best_configuration.json")["configurations"] == \
        read_json(expected / "best_configuration.json")["configurations"]
    for fold in (0, 1):
        a = ckpt.load_checkpoint(results / "2d" / f"fold_{fold}" / "checkpoint_final.pt")
        b = ckpt.load_checkpoint(expected / "2d" / f"fold_{fold}" / "checkpoint_final.pt")
        assert a["log"]["epoch"] == b["log"]["epoch"] == [0, 1]
        for key, tensor in b["network"].items():
            assert torch.allclose(a["network"][key].float(), tensor.float(), rtol=1e-3, atol=1e-5), (fold, key)
        assert read_json(results / "2d" / f"fold_{fold}" / "validation" / "summary.json")["mean_dice"] == \
            pytest.approx(read_json(expected / "2d" / f"fold_{fold}" / "validation" / "summary.json")["mean_dice"],
                          abs=0.02)  # that noise may flip a voxel or two
    assert (results / "report" / "index.html").is_file()
    assert not [p for p in root.rglob(".*") if ".tmp" in p.name or p.name.endswith(".lock")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("where,at,signal_name",
                         [*POINTS, *(pytest.param(*p, marks=pytest.mark.slow) for p in SLOW_POINTS)],
                         ids=[f"{'.'.join(w.split('.')[-2:])}-{a}-{s}" for w, a, s in POINTS + SLOW_POINTS])
def test_a_run_stopped_anywhere_resumes_to_the_uninterrupted_result(workspaces, tmp_path, where, at, signal_name):
    template, reference = workspaces
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    stopped = _run(root, (where, at, signal_name))
    assert stopped.returncode == (-9 if signal_name == "SIGKILL" else 143), stopped.stderr[-3000:]
    if signal_name == "SIGTERM":
        assert "stopped by SIGTERM" in stopped.stderr
    again = _run(root)
    assert again.returncode == 0, again.stderr[-3000:]
    _same_result(root, reference)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_two_runs_started_together_one_works_the_other_waits(workspaces, tmp_path):
    template, reference = workspaces
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    args = [sys.executable, "-m", "autounet", RUN[0], str(root / "raw" / NAME), "--root", str(root), *RUN[1:], "--wait"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert any("locked by another autounet process" in err for _, err in outs)  # the second one waited
    _same_result(root, reference)
