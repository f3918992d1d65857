"""A fold's setup: plans, split, data and (for the cascade) previous-stage predictions, all
found and checked before any work starts, with errors that say what to run first."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from autounet.autoplan.plans import Plans, StagePlan, load_plans
from autounet.errors import WorkspaceError
from autounet.io.atomic import read_json
from autounet.io.provenance import split_ids
from autounet.workspace import DatasetPaths, FoldPaths, PreprocessedCase, preprocessed_case_ids


@dataclass(frozen=True)
class FoldSetup:
    """Everything a fold's training reads and where it writes.

    next_configuration : the cascade stage that takes this configuration's predictions as input.
    """

    plans: Plans
    configuration: str
    stage: StagePlan
    fold: str
    train_ids: list[str]
    val_ids: list[str]
    paths: DatasetPaths
    next_configuration: str | None = None

    @property
    def output(self) -> FoldPaths:
        """The fold's folder: checkpoints, logs, validation."""
        return self.paths.trained.fold(self.configuration, self.fold)

    @property
    def validates(self) -> bool:
        """A fold trained on every case ("all") has no validation cases of its own."""
        return self.fold != "all"

    def case_arrays(self, case_id: str) -> PreprocessedCase:
        return PreprocessedCase(self.paths.data_folder(self.stage.data_identifier), case_id)

    def previous_labels(self, case_id: str) -> Path | None:
        """A cascade stage's input: the previous stage's cross-validation labels of the case."""
        if not self.stage.previous_stage:
            return None
        return self.paths.trained.next_stage_file(self.stage.previous_stage, case_id)

    def next_stage_file(self, case_id: str) -> Path | None:
        """Where this stage's labels of a case go when a cascade stage takes them as input."""
        if self.next_configuration is None:
            return None
        return self.paths.trained.next_stage_file(self.configuration, case_id)

    def next_stage_shape(self, case_id: str) -> tuple[int, ...]:
        """The case's preprocessed shape in the next (cascade) stage's data."""
        data = self.paths.data_folder(self.plans.configurations[self.next_configuration].data_identifier)
        return tuple(read_json(PreprocessedCase(data, case_id).meta)["shape"])

    def with_stage(self, stage: StagePlan) -> "FoldSetup":
        """The setup with another version of its configuration (a budget's lighter variant)."""
        plans = dataclasses.replace(self.plans, configurations={**self.plans.configurations, self.configuration: stage})
        return dataclasses.replace(self, plans=plans, stage=stage)


def _split(paths: DatasetPaths, fold: int | str) -> tuple[list[dict], list[str], list[str]]:
    splits = read_json(paths.splits)
    if str(fold) != "all" and not 0 <= int(fold) < len(splits):
        raise WorkspaceError(f"fold {fold} does not exist: {paths.splits} has folds 0..{len(splits) - 1}")
    return (splits, *split_ids(splits, fold))


def _check_previous_stage(paths: DatasetPaths, configuration: str, stage: StagePlan, splits: list[dict],
                          cases: list[str]) -> None:
    """A cascade stage trains on the previous stage's cross-validation predictions: all of them."""
    lacking = [c for c in cases if not paths.trained.next_stage_file(stage.previous_stage, c).is_file()]
    if lacking:
        folds = " ".join(map(str, sorted({i for i, s in enumerate(splits) for c in lacking if c in s["val"]})))
        raise WorkspaceError(
            f"{configuration} needs the cross-validation predictions of {stage.previous_stage} for every case; "
            f"{len(lacking)} are missing in {paths.trained.next_stage(stage.previous_stage)}. Run first: "
            f"autounet train {paths.name} {stage.previous_stage} FOLD   for FOLD in {folds}")


def prepare_fold(paths: DatasetPaths, configuration: str, fold: int | str) -> FoldSetup:
    """Check plans, preprocessed data, split and (for the cascade) previous-stage predictions."""
    plans = load_plans(paths.plans)
    if configuration not in plans.configurations:
        raise WorkspaceError(f"configuration '{configuration}' is not in {paths.plans}; "
                             f"planned: {', '.join(plans.configurations)}")
    stage = plans.configurations[configuration]
    data_folder = paths.data_folder(stage.data_identifier)
    available = set(preprocessed_case_ids(data_folder)) if data_folder.is_dir() else set()
    splits, train_ids, val_ids = _split(paths, fold)
    missing = sorted(set(train_ids + val_ids) - available)
    if missing:
        raise WorkspaceError(f"{data_folder}: {len(missing)} case(s) not preprocessed (e.g. {missing[:3]}); "
                             f"run: autounet plan_and_preprocess {paths.name} -c {configuration}")
    if stage.previous_stage:
        _check_previous_stage(paths, configuration, stage, splits, train_ids + val_ids)
    following = [name for name, other in plans.configurations.items() if other.previous_stage == configuration]
    return FoldSetup(plans, configuration, stage, str(fold), train_ids, val_ids, paths,
                     following[-1] if following else None)
