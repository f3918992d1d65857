"""Exceptions meant for people: each message names the file and the problem."""

from __future__ import annotations


class AutounetError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class DatasetError(AutounetError):
    """A raw dataset (files or dataset.json) cannot be used as it is."""


class DatasetVerificationError(DatasetError):
    """Verification found one or more problems; ``problems`` lists every one of them."""

    def __init__(self, dataset_dir: str, problems: list[str]):
        self.dataset_dir = dataset_dir
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"dataset {dataset_dir} failed verification with {len(self.problems)} problem(s); "
            f"nothing was written:\n{lines}"
        )


class WorkspaceError(AutounetError):
    """A dataset, plan or result could not be found where it should be."""


class TrainingFailed(AutounetError):
    """A fold process of a run failed; its training log says why. The run's finished folds are kept."""
