"""Results that outlive their data: a fold records what it trained on; after an edited label
``run`` trains the stale folds again (or keeps them with --keep-stale), and ``train``,
``find_best_configuration`` and ``predict`` warn."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from autounet import api
from autounet.io.atomic import read_json, write_json
from autounet.io.provenance import FoldInputs, changes, fold_inputs, recorded_inputs, stale_reasons
from autounet.workspace import DatasetPaths

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0)
OPTIONS = api.RunOptions(schedule=TINY, device="cpu", processes=1)


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny 2D dataset after one `autounet run` (5 folds of 2d)."""
    raw = api.make_example_dataset(tmp_path / "raw" / "Dataset906_Stale", dims=2, cases=6, shape=(32, 32),
                                   test_cases=1)
    api.run(raw, tmp_path, OPTIONS)
    return raw, tmp_path


def _edit_label(raw: Path, case: str = "case_003") -> None:
    """A corrected label: some background becomes foreground."""
    path = raw / "labelsTr" / f"{case}.png"
    label = skio.imread(path)
    label[:4, :4] = 1
    skio.imsave(path, label.astype(np.uint8), check_contrast=False)


def _paths(raw: Path, root: Path) -> DatasetPaths:
    return api.resolve_dataset(raw, root)


def _stamps(root: Path, raw: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "results" / raw.name).glob("2d/fold_*/checkpoint_final.pt")}


def test_every_fold_records_its_inputs_and_is_current_after_training(trained):
    raw, root = trained
    paths = _paths(raw, root)
    for fold in range(5):
        recorded = recorded_inputs(paths.trained.fold("2d", fold))
        assert recorded is not None and recorded == fold_inputs(paths, "2d", fold)
        assert len(recorded.cases) == 6 and stale_reasons(paths, "2d", fold) == []


def test_an_edited_label_makes_run_train_the_folds_again(trained, caplog):
    raw, root = trained
    before = _stamps(root, raw)
    _edit_label(raw)
    with caplog.at_level(logging.INFO, logger="autounet"):
        result = api.run(raw, root, OPTIONS)
    results = root / "results" / raw.name
    for fold in range(5):  # case_003 is in every fold's training or validation cases
        assert (f"fold {fold} of 2d: trained on other data than the dataset's now (1 case(s) changed (case_003)); "
                "training it again") in caplog.text
        assert (results / "2d" / f"stale_fold_{fold}" / "checkpoint_final.pt").is_file()  # the old model, kept aside
        assert not (results / "2d" / f"stale_fold_{fold}" / ".fold.lock").exists()
    after = _stamps(root, raw)
    assert set(after) == set(before) and all(after[p] != before[p] for p in before)  # trained again
    assert "the data changed since the run was made; it starts afresh" in caplog.text
    assert result["configurations"] == ["2d"]
    paths = _paths(raw, root)
    assert all(stale_reasons(paths, "2d", f) == [] for f in range(5))
    assert read_json(results / "run.json")["sessions"] == 2
    # and the selection scored the new folds: its table reads their validation
    assert read_json(results / "best_configuration.json")["configurations"] == ["2d"]


def test_keep_stale_keeps_the_folds_and_every_consumer_warns(trained, caplog):
    raw, root = trained
    before = _stamps(root, raw)
    _edit_label(raw)
    with caplog.at_level(logging.INFO, logger="autounet"):
        api.run(raw, root, api.RunOptions(schedule=TINY, device="cpu", processes=1, keep_stale=True))
    assert _stamps(root, raw) == before
    assert "fold 2 of 2d: trained on other data than the dataset's now (1 case(s) changed (case_003)); kept " \
           "(--keep-stale)" in caplog.text
    assert "its validation predictions come from a model of the old data" in caplog.text  # find_best_configuration
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autounet"):
        api.predict(raw / "imagesTs", root / "pred", raw.name, root=root)
    assert "fold 0 of 2d: trained on other data" in caplog.text and "autounet run" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autounet"):
        api.train(raw, "2d", 1, root=root, device="cpu", config=TINY, resume=True)
    assert "fold 1 of 2d: trained on other data" in caplog.text and "--continue" in caplog.text


def test_a_changed_plan_or_split_is_named():
    base = FoldInputs("p1", "s1", {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"})
    assert changes(base, base) == []
    assert changes(base, FoldInputs("p2", "s1", base.cases)) == ["the plan changed"]
    assert changes(base, FoldInputs("p1", "s2", base.cases)) == ["the split changed"]
    edited = {k: "x" for k in base.cases}
    assert changes(base, FoldInputs("p1", "s1", edited)) == ["5 case(s) changed (a, b, c and 2 more)"]
    assert changes(FoldInputs("p", "s", {}, "prev1"), FoldInputs("p", "s", {}, "prev2")) == [
        "the previous stage was trained again"]


def test_a_new_split_makes_the_folds_stale_and_a_damaged_record_is_named(trained):
    raw, root = trained
    paths = _paths(raw, root)
    splits = read_json(paths.splits)
    splits[0]["train"], splits[0]["val"] = splits[0]["val"], splits[0]["train"]
    write_json(paths.splits, splits)
    assert stale_reasons(paths, "2d", 0) == ["the split changed"]
    assert stale_reasons(paths, "2d", 1) == []
    write_json(paths.trained.fold("2d", 1).inputs, {"version": 1, "plan": 3})
    with pytest.raises(ValueError, match="inputs.json: not a fold's record"):
        stale_reasons(paths, "2d", 1)


def test_a_fold_without_a_record_or_without_preprocessed_data_is_not_called_stale(trained):
    raw, root = trained
    paths = _paths(raw, root)
    paths.trained.fold("2d", 0).inputs.unlink()   # trained before records existed
    assert stale_reasons(paths, "2d", 0) == []
    shutil.rmtree(paths.preprocessed)             # the preprocessed data deleted to save space
    assert stale_reasons(paths, "2d", 1) == []
