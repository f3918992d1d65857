"""Every row of the bad-input table (rows.py): the command, run as a user would, prints the
message and exits with the code the row says, without a traceback, and writes or loses nothing
it should not. ``docs/bad_inputs.md`` is rendered from the rows; a test keeps it current
(``python -m tests.bad_inputs.test_bad_inputs`` writes it again)."""

from __future__ import annotations

import importlib
import logging
import re
import sys
from pathlib import Path

import pytest

from tests.bad_inputs.rows import NOTHING, ROWS, Row
from tests.bad_inputs.world import build, copy, run, snapshot

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad_inputs.md"

# Bad inputs whose tests live beside the code they exercise (verification reads every case;
# these are refused with the file and the problem named, nothing written).
ELSEWHERE = [
    ("a channel file missing", "tests/io/test_verify.py::test_missing_channel_file"),
    ("a label file missing", "tests/io/test_verify.py::test_missing_label_file"),
    ("a label without images", "tests/io/test_verify.py::test_label_without_images"),
    ("shape, spacing, origin or direction differing between a case's files", "tests/io/test_verify.py::test_geometry_mismatch"),
    ("NaN or Inf in a training image", "tests/io/test_verify.py::test_non_finite_voxels"),
    ("a truncated PNG", "tests/io/test_verify.py::test_truncated_png"),
    ("an unreadable file", "tests/io/test_verify.py::test_unreadable_file"),
    ("a 4D image", "tests/io/test_verify.py::test_4d_image"),
    ("another image format in imagesTr", "tests/io/test_verify.py::test_wrong_file_ending_in_images"),
    ("a duplicate case id in dataset.json", "tests/io/test_verify.py::test_duplicate_case_id_in_explicit_dataset_object"),
    ("case ids differing only in letter case", "tests/io/test_verify.py::test_case_ids_differing_only_in_letter_case"),
    ("numTraining not matching the files", "tests/io/test_verify.py::test_num_training_inconsistent_with_files"),
    ("more channels declared than files", "tests/io/test_verify.py::test_more_channels_declared_than_files"),
    ("a malicious pickle in a checkpoint", "tests/model/test_checkpoint.py::test_pickled_code_is_refused"),
    ("a truncated checkpoint", "tests/model/test_checkpoint.py::test_a_truncated_checkpoint_names_the_file"),
    ("Inf in a float TIFF (or NIfTI) to predict", "tests/io/test_image_io.py::test_non_finite_voxels_of_an_input_are_refused"),
    ("files written by an atomic write: the umask's permissions, not 0600",
     "tests/io/test_atomic.py::test_files_get_the_permissions_of_the_umask"),
    ("`train` of a fold another process is training (a second terminal, a retried job): exit 75 naming the "
     "holder's pid, host, command and start, nothing written; `--wait` waits",
     "tests/test_locks.py::test_train_refuses_a_fold_another_process_trains_and_writes_nothing"),
    ("two `train` processes of one fold started together: one trains, the other stops with exit 75",
     "tests/test_locks.py::test_two_trainers_of_one_fold_one_trains_the_other_stops"),
    ("`run` of a dataset another `run` is working on: exit 75 naming the holder, run.json untouched",
     "tests/test_locks.py::test_run_refuses_while_another_run_holds_the_dataset"),
    ("`plan_and_preprocess` while another process preprocesses the dataset: exit 75, or with `--wait` it waits "
     "and goes on", "tests/test_locks.py::test_preprocessing_refuses_or_waits_for_another_preprocessor"),
    ("`nan` or `inf` for a number option (`--gpu-memory-gb nan`, `--initial-lr nan`): a usage error, exit 2",
     "tests/cli/test_nnunet_spellings.py::test_nan_and_inf_are_usage_errors"),
    ("a full disk while a checkpoint is written: `PATH: disk full while writing this checkpoint (N MB free there; "
     "...)`, exit 2, not a traceback; the previous checkpoint intact",
     "tests/model/test_checkpoint.py::test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one"),
    ("a case to predict whose second channel has another spacing, origin or direction than the first: that case "
     "fails naming the file and the difference (as verification refuses it in training data)",
     "tests/io/test_image_io.py::test_channels_of_another_geometry_are_refused_at_prediction"),
    ("training inside a Slurm cpuset on a busy node: the load is measured on the CPUs this process may use, not "
     "the whole node's", "tests/training/test_busy_machine.py::test_load_counts_only_the_cpus_this_process_may_use"),
    ("a MedMNIST file with a class value of 2e9: refused naming the file and the value, before any memory goes "
     "to it", "tests/io/test_convert_medmnist.py::test_a_huge_class_value_is_refused_before_any_memory_goes_to_it"),
    ("a MedMNIST file whose arrays need more than half the machine's memory: refused from the array headers, "
     "before loading", "tests/io/test_convert_medmnist.py::test_a_file_larger_than_memory_allows_is_refused_from_its_headers"),
    ("a label map with values beyond int16 (a 16-bit mask's 65535, an int32 65537, -40000): reported as "
     "undeclared with the value as it is in the file, not wrapped to -1 or 1",
     "tests/io/test_verify.py::test_undeclared_label_values_are_reported_as_they_are_in_the_file"),
    ("an ONNX model whose tensors point to external data (`../weights.bin`): refused without reading outside the "
     "file (autounet never writes external data; onnx>=1.16)", "tests/inference/test_onnx.py::test_external_data_is_never_followed"),
    ("an ONNX model's metadata with `\"labels\": []` or a previous stage that leads back to itself: an error "
     "naming the file, not an AttributeError or RecursionError",
     "tests/inference/test_onnx.py::test_hostile_metadata_is_a_clear_error"),
    ("`convert_msd TaskNN --overwrite` while another dataset (another name) uses the id: refused, naming it; only "
     "the folder the conversion writes is ever replaced, and it is named before",
     "tests/io/test_convert_msd.py::test_another_folder_with_the_same_id_is_never_replaced"),
    ("a classification dataset.json whose class names look like other classes' values (`{\"1\": 0, \"2\": 1}`): "
     "refused, saying what a row `1` would mean (in labelsTr.csv a number is always the class value)",
     "tests/io/test_case_dataset.py::test_numeric_class_names_that_are_not_their_values_are_refused"),
    ("`predict -o` into a folder holding a case's output already (`-o raw/X/labelsTs`: the ground truth): that "
     "case fails naming the file, which is kept; the others are predicted; every output existing: exit 2; "
     "`--overwrite` replaces them (a case-level model's `-o labelsTs.csv` likewise)",
     "tests/inference/test_predict.py::test_existing_outputs_are_refused_per_case_unless_overwrite"),
    ("SIGTERM (a scheduler's preemption or time limit) to `train` with augmentation workers: exit 143 saying "
     "how to resume, no process left, the lock released, the last finished epoch's checkpoint intact; "
     "`--continue` finishes", "tests/test_stopping.py::test_sigterm_stops_train_cleanly_and_continue_finishes"),
    ("SIGTERM in the middle of a training step: the fold resumed with `--continue` ends as the uninterrupted "
     "one (same losses and weights)",
     "tests/test_stopping.py::test_a_fold_stopped_by_sigterm_resumes_to_the_uninterrupted_result"),
    ("`run` stopped while fold processes train on several GPUs: each gets SIGTERM and stops cleanly; one that "
     "ignores it is killed after a grace period", "tests/test_stopping.py::test_a_stopped_run_stops_its_fold_processes"),
    ("`run` killed without warning (SIGKILL, out of memory) while fold processes train: they stop too (Linux)",
     "tests/test_stopping.py::test_a_fold_process_does_not_outlive_a_killed_run"),
    ("a label edited after a finished `run`, then `run` again: each fold trained on the old label is named, moved "
     "to `stale_fold_K` and trained again, the budget starts afresh",
     "tests/runner/test_stale.py::test_an_edited_label_makes_run_train_the_folds_again"),
    ("the same with `--keep-stale`: the folds are kept with a warning, and `find_best_configuration`, `predict` and "
     "`train --continue` each warn that the model is stale",
     "tests/runner/test_stale.py::test_keep_stale_keeps_the_folds_and_every_consumer_warns"),
    ("a new split makes its folds stale; a damaged `inputs.json` is an error naming it",
     "tests/runner/test_stale.py::test_a_new_split_makes_the_folds_stale_and_a_damaged_record_is_named"),
    ("`run` stopped by SIGKILL or SIGTERM at any of 20 points (preprocessing, training steps, checkpoints, "
     "validation outputs, run.json, selection, postprocessing rules, report), then run again: the same chosen "
     "configuration and final checkpoints as an uninterrupted run, no process and no temporary file left",
     "tests/test_fault_injection.py::test_a_run_stopped_anywhere_resumes_to_the_uninterrupted_result"),
    ("two `run`s of one dataset started together with `--wait`: one works, the other waits, then finds the work "
     "done; the result is the single run's", "tests/test_fault_injection.py::test_two_runs_started_together_one_works_the_other_waits"),
    ("a DICOM series with a missing slice, uneven or duplicate slice positions: refused naming the folder, the "
     "series UID and the gap", "tests/io/test_dicom.py::test_broken_stacks_are_named"),
    ("a DICOM folder whose series mixes slice sizes or orientations: refused naming the series",
     "tests/io/test_dicom.py::test_mixed_series_are_named"),
    ("DICOM slices shifted within their plane (gantry tilt) or without a position: refused naming the series",
     "tests/io/test_dicom.py::test_slices_off_the_stack_are_named"),
    ("`predict --output-format dicom-seg` without highdicom: the command to install it",
     "tests/io/test_dicom.py::test_write_seg_without_highdicom_says_how_to_install"),
    ("`predict` killed by SIGKILL in the middle of a folder, then `--continue`: complete outputs kept, the rest "
     "predicted, the same files as an uninterrupted run, no temporary file left",
     "tests/test_predictor.py::test_continue_after_a_sigkill_completes_the_folder_as_an_uninterrupted_run"),
    ("an array handed to `Predictor.predict` of the wrong shape or channel count, with NaN, or 3D without a "
     "spacing: an error saying what it takes", "tests/test_predictor.py::test_the_predictor_refuses_what_it_cannot_take"),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, base, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    world = copy(base, tmp_path / "world")
    row.setup(world, monkeypatch)
    before = snapshot(world.tmp)
    code, text = run(world, row.command, capsys, caplog)
    assert "Traceback" not in text, text
    assert code == row.exit_code, f"exit code {code}, expected {row.exit_code}:\n{text}"
    assert re.search(row.message, text, re.S), f"expected /{row.message}/ in:\n{text}"
    if row.effect == NOTHING or row.effect.startswith("nothing written"):
        assert snapshot(world.tmp) == before, "files were written or changed"
    if row.check is not None:
        row.check(world)


def _readable(pattern: str) -> str:
    return re.sub(r"\\(.)", r"\1", pattern.replace(".*", " … ")).replace("|", "/")


def render() -> str:
    """The markdown table of every bad input: the rows run here, then those tested elsewhere."""
    lines = ["# Bad inputs autounet handles", "",
             "Each row is a test: `python -m pytest tests/bad_inputs` runs the first table (the command as a "
             "user types it, in a tiny trained workspace), the second table names the test of each row. "
             "Exit code 2: refused before any work; 1: some inputs failed, the others were done; 75: another "
             "autounet process holds the work (`autounet/locks.py`), try again later or pass `--wait`; 128 + a "
             "signal's number (143: SIGTERM): stopped by that signal, cleanly (`autounet/stopping.py`); 0: done, "
             "with what the row says. Issue column: the point of issue 13 the row answers.", "",
             "| # | issue | bad input | command | the user reads | exit | on disk | test |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(ROWS, 1):
        command = r.command.replace("|", "\\|")
        lines.append(f"| {i} | {r.issue} | {r.what} | `{command}` | {_readable(r.message)} | {r.exit_code} | "
                     f"{r.effect} | `test_bad_input[{r.id}]` |")
    lines += ["", "Refused (or handled) as well, tested beside the code:", "", "| # | bad input | test |", "|---|---|---|"]
    for i, (what, test) in enumerate(ELSEWHERE, len(ROWS) + 1):
        lines.append(f"| {i} | {what} | `{test}` |")
    return "\n".join(lines) + "\n"


def test_the_table_in_docs_is_current():
    assert DOC.read_text() == render(), "run: python -m tests.bad_inputs.test_bad_inputs"


def test_every_row_elsewhere_names_an_existing_test():
    for _, test in ELSEWHERE:
        path, name = test.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, name, None)), test


def test_the_table_has_at_least_fifty_rows_and_unique_ids():
    assert len(ROWS) + len(ELSEWHERE) >= 50
    assert len({r.id for r in ROWS}) == len(ROWS)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(ROWS) + len(ELSEWHERE)} rows)", file=sys.stderr)
