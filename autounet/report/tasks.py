"""What the report asks of a task: its sections after "where the time went".

Chosen once from the plans (:func:`task_for`); the page calls it instead of testing which task
the dataset has. See docs/tasks.md for what a new task provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from autounet.autoplan.plans import Plans
from autounet.postprocess.metrics import class_names
from autounet.report.case_level import balance_section, case_cv_section
from autounet.report.figures import Figures
from autounet.report.instances import instance_cv_section
from autounet.report.overlays import overlay_section
from autounet.report.plan import TrainedStage, plan_section
from autounet.report.selection import cross_validation_section
from autounet.report.training import training_section
from autounet.workspace import DatasetPaths

Section = tuple[str, str, str]  # anchor, heading, HTML


@dataclass(frozen=True)
class ReportInputs:
    """What every section may draw on: the plan and cross-validation results (each None with a
    note saying why when it could not be read), the stages as trained, the figures folder."""

    paths: DatasetPaths
    plans: Plans | None
    plan_problem: str | None
    cv: dict | None
    cv_problem: str | None
    trained: dict[str, TrainedStage]
    figures: Figures
    max_overlays: int


class ReportTask(Protocol):
    """The report's part of a task."""

    def sections(self, r: ReportInputs) -> list[Section]:
        """The numbered sections of the page."""


class SegmentationReport:
    """The plan, training curves, the cross-validation with postprocessing, validation overlays."""

    def sections(self, r: ReportInputs) -> list[Section]:
        names = class_names(r.plans.labels) if r.plans else {}
        return [
            ("plan", "1. The plan", plan_section(r.plans, r.plan_problem, r.trained)),
            ("training", "2. Training curves", training_section(r.paths, r.plans, r.figures)),
            ("cross-validation", "3. Cross-validation and postprocessing",
             cross_validation_section(r.cv, r.cv_problem, names)),
            ("overlays", "4. Validation predictions", overlay_section(r.paths, r.plans, r.cv, r.figures, r.max_overlays)),
        ]


class InstanceReport:
    """The plan, training curves, the cross-validation by the objects' PQ and AJI."""

    def sections(self, r: ReportInputs) -> list[Section]:
        return [
            ("plan", "1. The plan", plan_section(r.plans, r.plan_problem, r.trained)),
            ("training", "2. Training curves", training_section(r.paths, r.plans, r.figures)),
            ("cross-validation", "3. Cross-validation: objects", instance_cv_section(r.cv, r.cv_problem)),
        ]


@dataclass(frozen=True)
class CaseReport:
    """The plan, the classes or targets, training curves, the cross-validation with its plots."""

    balance_heading: str  # "Classes" or "Targets"

    def sections(self, r: ReportInputs) -> list[Section]:
        assert r.plans is not None  # chosen from the plans
        return [
            ("plan", "1. The plan", plan_section(r.plans, r.plan_problem, r.trained)),
            ("balance", f"2. {self.balance_heading}", balance_section(r.paths, r.plans, r.figures)),
            ("training", "3. Training curves", training_section(r.paths, r.plans, r.figures)),
            ("cross-validation", "4. Cross-validation", case_cv_section(r.paths, r.plans, r.cv, r.cv_problem, r.figures)),
        ]


def task_for(plans: Plans | None) -> ReportTask:
    """The report's part of the task the plans describe (a segmentation's when there is no plan yet)."""
    if plans is not None and plans.instance_task is not None:
        return InstanceReport()
    if plans is None or plans.case_task is None:
        return SegmentationReport()
    return CaseReport("Targets" if plans.case_task.task == "regression" else "Classes")
