"""What selection and postprocessing ask of a task: how a configuration is scored on the
cross-validation and chosen (a typed :mod:`autounet.postprocess.selections` result), and what
is done to each predicted mask afterwards.

Chosen once from the plans (:func:`task_for`); ``find_best_configuration`` calls it instead of
testing which task it scores. See docs/tasks.md for what a new task provides.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.run import Postprocess
from autounet.postprocess.case_selection import select_case_level
from autounet.postprocess.components import PostprocessingRules, apply_rules
from autounet.postprocess.instance_selection import select_instances
from autounet.postprocess.instances import InstanceRules, instance_postprocessor
from autounet.postprocess.segmentation_selection import select_segmentation
from autounet.postprocess.selections import Selection
from autounet.workspace import DatasetPaths

Postprocessor = Postprocess | None


class SelectionTask(Protocol):
    """Selection's part of a task."""

    def select(self, paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
               ensembles: bool, processes: int) -> Selection:
        """Score the candidates on the cross-validation, choose, write what the choice needs
        beside it (postprocessing, the best entry's predictions); returns the result."""

    def postprocessor(self, rules: dict[str, Any] | None) -> Postprocessor:
        """What ``predict`` applies to each mask, from the chosen rules (the ``"rules"`` entry of
        postprocessing.json; None: none were chosen or they are switched off). Raises ValueError
        for rules of another kind."""


class SegmentationSelectionTask:
    """Dice of each configuration and pair ensemble, then connected-component postprocessing."""

    def select(self, paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
               ensembles: bool, processes: int) -> Selection:
        return select_segmentation(paths, plans, splits, configurations, ensembles, processes)

    def postprocessor(self, rules: dict[str, Any] | None) -> Postprocessor:
        chosen = PostprocessingRules.from_json(rules) if rules is not None else None
        return None if chosen is None or chosen.is_identity else (lambda seg: apply_rules(seg, chosen))


class InstanceSelectionTask:
    """Objects seeded from the predicted classes, the rules chosen by PQ on the cross-validation."""

    def select(self, paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
               ensembles: bool, processes: int) -> Selection:
        return select_instances(paths, plans, splits, configurations, ensembles)

    def postprocessor(self, rules: dict[str, Any] | None) -> Postprocessor:
        return instance_postprocessor(InstanceRules.from_json(rules) if rules is not None else InstanceRules())


class CaseSelectionTask:
    """The task's validation score, test-time mirroring where it helps, decision thresholds."""

    def select(self, paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
               ensembles: bool, processes: int) -> Selection:
        return select_case_level(paths, plans, splits, configurations, ensembles)

    def postprocessor(self, rules: dict[str, Any] | None) -> Postprocessor:
        return None  # a case-level task has no postprocessing


def task_for(plans: Plans | None) -> SelectionTask:
    """Selection's part of the task the plans describe (a segmentation's without plans)."""
    if plans is not None and plans.case_task is not None:
        return CaseSelectionTask()
    return InstanceSelectionTask() if plans is not None and plans.instance_task is not None else SegmentationSelectionTask()


def postprocessor_for(plans: Plans | None, rules: dict[str, Any] | None, source: object) -> Postprocessor:
    """What ``predict`` applies to each mask of a model trained with ``plans``, from its chosen
    rules (None: none, or switched off); a WorkspaceError names ``source`` when they are damaged."""
    try:
        return task_for(plans).postprocessor(rules)
    except (ValueError, TypeError, KeyError) as e:
        raise WorkspaceError(f"{source}: its postprocessing rules are damaged ({e})") from e
