"""The task seam: each stage chooses its part of a task once from the plans, every part offers
what its stage asks for, and a selection result survives its JSON file."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import numpy as np
import pytest

from autounet.autoplan.plans import CaseTaskPlan, InstanceTaskPlan, NetworkTopology, Plans
from autounet.inference import tasks as inference_tasks
from autounet.model.build import HEADS, build_network
from autounet.postprocess import tasks as selection_tasks
from autounet.postprocess.selections import CaseSelection, SegmentationSelection, selection_from_json
from autounet.preprocess import tasks as preprocessing_tasks
from autounet.report import tasks as report_tasks
from autounet.training import tasks as training_tasks

STAGES = {  # module -> (its Protocol, the segmentation class, the case-level class)
    training_tasks: (training_tasks.TrainingTask, training_tasks.SegmentationTraining, training_tasks.CaseTraining),
    inference_tasks: (inference_tasks.PredictionTask, inference_tasks.SegmentationPrediction,
                      inference_tasks.CasePrediction),
    selection_tasks: (selection_tasks.SelectionTask, selection_tasks.SegmentationSelectionTask,
                      selection_tasks.CaseSelectionTask),
    preprocessing_tasks: (preprocessing_tasks.PreprocessingTask, preprocessing_tasks.SegmentationPreprocessing,
                          preprocessing_tasks.CasePreprocessing),
    report_tasks: (report_tasks.ReportTask, report_tasks.SegmentationReport, report_tasks.CaseReport),
}


def _plans(task: str | None) -> Plans:
    case = None if task is None else CaseTaskPlan(task, ("a", "b"), "cross_entropy")
    return Plans("Dataset001_X", "default", ("ct",), {"background": 0, "a": 1}, None, ".nii.gz", "simpleitk", 3,
                 (0, 1, 2), (0, 1, 2), (1.0, 1.0, 1.0), (8, 8, 8), (), {}, 8.0, case_task=case)


def _methods(cls) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


@pytest.mark.parametrize("module", list(STAGES), ids=lambda m: m.__name__)
def test_each_stage_chooses_its_part_once_from_the_plans(module):
    protocol, segmentation, case_level = STAGES[module]
    assert type(module.task_for(_plans(None))) is segmentation
    for task in ("classification", "multilabel", "regression"):
        assert type(module.task_for(_plans(task))) is case_level
    for cls in (segmentation, case_level):  # every method the stage calls, with the Protocol's arguments
        assert _methods(protocol) <= _methods(cls), (cls, _methods(protocol) - _methods(cls))
        for name in _methods(protocol):
            assert list(inspect.signature(getattr(cls, name)).parameters) == \
                list(inspect.signature(getattr(protocol, name)).parameters), (cls, name)


def test_the_training_metric_names_the_task_score():
    assert training_tasks.task_for(_plans(None)).metric == "pseudo Dice"
    assert training_tasks.task_for(_plans("classification")).metric == "val AUC"
    assert training_tasks.task_for(_plans("regression")).metric == "val -MAE"


def test_a_network_is_built_by_its_head_and_an_unknown_head_is_named():
    topology = NetworkTopology(dims=2, input_channels=1, num_outputs=3, features_per_stage=(4, 8),
                               kernel_sizes=((3, 3), (3, 3)), strides=((1, 1), (2, 2)),
                               convs_per_stage_encoder=(1, 1), convs_per_stage_decoder=(1,))
    assert set(HEADS) == {"segmentation", "pooled"}
    assert type(build_network(topology)).__name__ == "UNet"
    assert type(build_network(dataclasses.replace(topology, head="pooled"))).__name__ == "CaseNetwork"
    with pytest.raises(ValueError, match="unknown network head 'mystery'"):
        build_network(dataclasses.replace(topology, head="mystery"))


SEGMENTATION = SegmentationSelection(
    ["1", "2"], {"2d": {"kind": "configuration", "members": ["2d"], "folds": ["0", "1"], "mean_dice": {"1": 0.8, "2": 0.6},
                        "foreground_mean_dice": 0.7},
                 "3d_fullres": {"kind": "configuration", "members": ["3d_fullres"], "folds": ["0", "1"],
                                "mean_dice": {"1": 0.9, "2": 0.05}, "foreground_mean_dice": 0.475}},
    "2d", {"rules": {"keep_largest_foreground": True, "keep_largest_per_class": []}, "report": {}}, 0.72,
    "autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d Dataset001_X")
CASE = CaseSelection("classification", ["a", "b"], {"2d": {
    "kind": "configuration", "members": ["2d"], "mirror": [True], "folds": ["0"], "score": 0.91, "thresholds": [0.4],
    "metrics": {"auc": 0.91, "accuracy": 0.8, "balanced_accuracy": 0.75}}}, "2d",
    "autounet predict -i INPUT_FOLDER -o predictions.csv -d Dataset001_X")


@pytest.mark.parametrize("selection", [SEGMENTATION, CASE], ids=["segmentation", "case-level"])
def test_a_selection_survives_its_json_file(selection):
    stored = json.loads(json.dumps(selection.to_json()))
    back = selection_from_json(stored)
    assert type(back) is type(selection) and back == selection and back.to_json() == stored
    best = back.best_configuration("postprocessing.json")
    assert best["name"] == "2d" and best["configurations"] == ["2d"] and best["predict_command"] == selection.predict_command
    assert back.describe().startswith("2d") and back.headline().startswith("2d (")


def test_the_selection_texts_say_what_was_chosen():
    assert SEGMENTATION.table().splitlines()[1].split()[:4] == ["2d", "0.8000", "0.6000", "0.7000"]
    assert "<- best" in SEGMENTATION.table().splitlines()[1]
    assert SEGMENTATION.describe() == "2d, foreground-mean Dice 0.7000 (0.7200 after postprocessing)"
    assert SEGMENTATION.details() and SEGMENTATION.prediction_output == "OUTPUT" and SEGMENTATION.warning() is None
    assert CASE.describe() == "2d (with test-time mirroring), auc 0.9100, accuracy 0.8000, balanced_accuracy 0.7500"
    assert "2d *" in CASE.table() and CASE.details() == [] and CASE.prediction_output == "predictions.csv"


def test_a_chosen_model_that_learned_nothing_is_a_warning():
    lost = dataclasses.replace(SEGMENTATION, entries={"2d": {**SEGMENTATION.entries["2d"], "foreground_mean_dice": 0.04}})
    assert "did not learn" in lost.warning() and "0.040" in lost.warning()
    nan = dataclasses.replace(SEGMENTATION, entries={"2d": {**SEGMENTATION.entries["2d"], "foreground_mean_dice": math.nan}})
    assert nan.warning() is None and "–" in nan.headline()


def test_an_instance_plan_chooses_the_instance_parts():
    plans = dataclasses.replace(_plans(None), instance_task=InstanceTaskPlan("cell"))
    assert plans.task == "instance"
    chosen = {m: type(m.task_for(plans)) for m in STAGES}
    assert chosen[training_tasks] is training_tasks.InstanceTraining
    assert chosen[preprocessing_tasks] is preprocessing_tasks.InstancePreprocessing
    assert chosen[selection_tasks] is selection_tasks.InstanceSelectionTask
    assert chosen[report_tasks] is report_tasks.InstanceReport
    assert chosen[inference_tasks] is inference_tasks.SegmentationPrediction  # masks, made objects by the postprocessor
    for module, cls in chosen.items():  # every method the stage calls, with the Protocol's arguments
        protocol = STAGES[module][0]
        for name in _methods(protocol):
            assert list(inspect.signature(getattr(cls, name)).parameters) == \
                list(inspect.signature(getattr(protocol, name)).parameters), (cls, name)
    post = selection_tasks.task_for(plans).postprocessor(None)  # objects even without chosen rules
    classes = np.zeros((1, 6, 8), np.uint8)
    classes[0, 1:5, 1:7], classes[0, 2:4, 2] = 2, 1
    classes[0, 2:4, 5] = 1
    assert post(classes).max() == 2
