"""``autounet run`` end to end on a tiny dataset: one call from raw data to a chosen model,
resumable after a SIGKILL, and --dry-run as per-fold commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autounet import api
from autounet.io.atomic import read_json

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0)


@pytest.fixture
def raw_2d(tmp_path: Path) -> Path:
    return api.make_example_dataset(tmp_path / "raw" / "Dataset905_Run", dims=2, cases=6, shape=(32, 32),
                                    test_cases=1)


def test_run_goes_from_raw_data_to_a_chosen_model_and_a_rerun_keeps_it(raw_2d, tmp_path):
    root = tmp_path
    result = api.run(raw_2d, root, api.RunOptions(schedule=TINY, device="cpu", processes=1))
    results = root / "results" / raw_2d.name
    assert result["configurations"] == ["2d"]
    assert read_json(results / "best_configuration.json")["configurations"] == ["2d"]
    for fold in range(5):
        assert (results / "2d" / f"fold_{fold}" / "validation" / "summary.json").is_file()
        assert list((results / "2d" / f"fold_{fold}" / "validation").glob("*.npz"))  # probabilities saved
    assert (results / "report" / "index.html").is_file()
    record = read_json(results / "run.json")
    assert record["finished"] and record["sessions"] == 1 and record["configurations"] == ["2d"]
    stamps = {p: p.stat().st_mtime_ns for p in results.glob("2d/fold_*/checkpoint_final.pt")}
    api.run(raw_2d, root, api.RunOptions(schedule=TINY, device="cpu", processes=1))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps      # finished folds are not trained again
    assert read_json(results / "run.json")["sessions"] == 2


def test_run_killed_half_way_resumes_and_finishes(raw_2d, tmp_path):
    command = [sys.executable, "-m", "autounet", "run", str(raw_2d), "--root", str(tmp_path), "--epochs", "2",
               "--iterations-per-epoch", "2", "-p", "1", "--device", "cpu"]
    results = tmp_path / "results" / raw_2d.name
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (results / "2d" / "fold_2").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = read_json(results / "run.json")
    assert not killed["finished"] and killed["used_s"] > 0
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming (session 2)" in done.stderr
    record = read_json(results / "run.json")
    assert record["finished"] and record["sessions"] == 2 and record["used_s"] >= killed["used_s"]
    assert (results / "best_configuration.json").is_file()
    assert "next: autounet predict -i IMAGES -o OUTPUT -d Dataset905_Run" in done.stderr


def test_dry_run_prints_the_per_fold_commands_and_trains_nothing(raw_2d, tmp_path):
    out = subprocess.run([sys.executable, "-m", "autounet", "run", str(raw_2d), "--root", str(tmp_path),
                          "--dry-run", "--time-budget", "1h", "-p", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("autounet plan_and_preprocess Dataset905_Run -c 2d")
    folds = [line for line in lines if line.startswith("autounet train Dataset905_Run 2d ")]
    assert len(folds) == 5 and all("--continue --save-probabilities --time-budget" in f for f in folds)
    assert lines[-2].startswith("autounet find_best_configuration") and lines[-1].startswith("autounet report")
    assert "time budget 1 h for the whole run" in out.stderr
    results = tmp_path / "results" / raw_2d.name
    assert not (results / "run.json").exists() and not (results / "2d").exists()


def test_without_a_budget_a_cpu_run_states_its_default(raw_2d, tmp_path):
    out = subprocess.run([sys.executable, "-m", "autounet", "run", str(raw_2d), "--root", str(tmp_path),
                          "--dry-run", "-p", "1", "--device", "cpu"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no --time-budget: training for 2 h on this CPU; pass --time-budget to change" in out.stderr
    assert "--time-budget 6984s" in out.stdout   # 2 h less 3% for selection and the report, every fold at once


def test_a_short_budgeted_run_decides_its_networks_once_and_shows_where_the_time_went(raw_2d, tmp_path):
    budget = 60.0
    env = {**os.environ, "AUTOUNET_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "autounet", "run", str(raw_2d), "--root", str(tmp_path), "--time-budget", "60s",
               "-p", "1", "--device", "cpu", "--no-amp"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results" / raw_2d.name
    record = read_json(results / "run.json")
    # the network was decided before the folds, recorded once, and every fold trained it
    assert set(record["networks"]) == {"2d"} and record["decision"]
    variant = record["networks"]["2d"]["variant"]
    spent = [read_json(results / "2d" / f"fold_{k}" / "spending.json") for k in range(5)]
    assert {s["variant"] for s in spent} == {variant}
    assert done.stderr.count("calibration: ") == 1        # measured once, not per fold
    assert "budget_variant" not in " ".join(p.name for p in results.rglob("*"))
    for s in spent:
        assert s["iterations"] > 0 and s["train_s"] > 0 and s["wall_s"] >= s["train_s"] + s["validation_s"] - 1
    # where the time went: in the log at its end and at the top of the report
    assert "=== where the time went ===" in done.stderr and "in training steps" in done.stderr
    page = (results / "report" / "index.html").read_text()
    assert "Where the time went" in page and "minimum to learn" in page
    below = [s for s in spent if s["iterations"] < s["learning_iterations"]]
    if below:  # 60 s for five folds: a fold below the learning minimum is a warning in both places
        assert "below the" in done.stderr and "Warning:" in page
    assert wall < 1.5 * budget + 30, f"{wall:.0f} s for a {budget:.0f} s budget"


def test_a_damaged_network_record_is_a_clear_error_naming_run_json(raw_2d, tmp_path):
    from autounet.errors import WorkspaceError
    from autounet.io.atomic import write_json

    record = tmp_path / "results" / raw_2d.name / "run.json"
    record.parent.mkdir(parents=True)
    write_json(record, {"budget_s": 60.0, "used_s": 1.0, "sessions": 1, "configurations": ["2d"],
                        "networks": {"2d": {"variant": "bogus"}}})
    with pytest.raises(WorkspaceError, match=r"run\.json: the network recorded for 2d is damaged.*bogus"):
        api.run(raw_2d, tmp_path, api.RunOptions(time_budget_s=60.0, device="cpu", processes=1))
    assert not (tmp_path / "results" / raw_2d.name / "2d").exists()   # nothing trained
