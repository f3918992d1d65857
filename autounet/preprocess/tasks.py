"""What preprocessing asks of a task: what a preprocessed case holds.

Chosen once from the plans (:func:`task_for`); ``plan_and_preprocess`` calls it instead of
testing which task the dataset has. See docs/tasks.md for what a new task provides.
"""

from __future__ import annotations

from typing import Protocol

from autounet.autoplan.plans import Plans
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.preprocess.case_level import preprocess_cases
from autounet.preprocess.instances import instance_classes
from autounet.preprocess.pipeline import preprocess_segmentation
from autounet.workspace import DatasetPaths


class PreprocessingTask(Protocol):
    """Preprocessing's part of a task."""

    def preprocess(self, spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                   configurations: list[str] | None, processes: int, force: bool, seed: int) -> dict[str, int]:
        """Preprocess every case for ``configurations``; returns {"done": n, "skipped": m}."""


class SegmentationPreprocessing:
    """Cropped, resampled, normalized images with their label maps and sampling locations."""

    def preprocess(self, spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                   configurations: list[str] | None, processes: int, force: bool, seed: int) -> dict[str, int]:
        return preprocess_segmentation(spec, cases, plans, paths, configurations, processes, force, seed)


class CasePreprocessing:
    """Normalized whole images at the network's input size, with the case's target."""

    def preprocess(self, spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                   configurations: list[str] | None, processes: int, force: bool, seed: int) -> dict[str, int]:
        return preprocess_cases(spec, cases, plans, paths, configurations, processes, force)


class InstancePreprocessing:
    """A segmentation of each object's interior and boundary (the references keep the object ids)."""

    def preprocess(self, spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                   configurations: list[str] | None, processes: int, force: bool, seed: int) -> dict[str, int]:
        return preprocess_segmentation(spec, cases, plans, paths, configurations, processes, force, seed,
                                       label_transform=instance_classes)


def task_for(plans: Plans) -> PreprocessingTask:
    """Preprocessing's part of the task the plans describe."""
    if plans.case_task is not None:
        return CasePreprocessing()
    return InstancePreprocessing() if plans.instance_task is not None else SegmentationPreprocessing()
