"""Where a run's time went: the budget, the wall time, the steps around training (preparation,
speed measurement, selection, report) from ``run.json``, and per configuration and fold the
iterations trained against the learning minimum and the seconds training against overhead (each
fold's ``spending.json``). Read by ``autounet run``'s closing summary and the report's first
section; a fold that trained below the minimum, or a chosen model that did not learn, becomes a
warning in plain words with what would help."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from autounet.io.atomic import read_json
from autounet.postprocess.selections import Selection
from autounet.report.markup import READ_ERRORS, bullets, esc, text_table
from autounet.training.budget import describe_seconds
from autounet.training.spending import FoldSpending, read_spending
from autounet.workspace import DatasetPaths

STEPS = (("preparation_s", "preparation (verify, plan, preprocess)"), ("measurement_s", "speed measurement"),
         ("selection_s", "choosing the best and postprocessing"), ("report_s", "report"))


@dataclass(frozen=True)
class RunSpending:
    """A run's record and its folds' spending."""

    record: dict
    folds: list[FoldSpending] = field(default_factory=list)

    @property
    def training_s(self) -> float:
        return sum(f.train_s for f in self.folds)

    def lines(self) -> list[str]:
        """The spending as text lines (the run's closing summary): the overview, then each fold."""
        return self.overview() + [f.describe() for f in self.folds]

    def overview(self) -> list[str]:
        """Budget, wall time, the share in training steps and the steps around training."""
        budget, used = self.record.get("budget_s"), self.record.get("used_s", 0.0)
        out = [f"wall time {describe_seconds(used)}" + ("" if budget is None else
                                                         f" of a {describe_seconds(budget)} budget")]
        if used:
            out[0] += f"; {100 * self.training_s / used:.0f}% in training steps"
        spent = self.record.get("spending", {})
        out += [f"{text}: {spent[key]:.0f} s" for key, text in STEPS if key in spent]
        return out + [f"decided before the folds: {line}" for line in self.record.get("decision", [])]

    def below_minimum(self) -> dict[str, list[FoldSpending]]:
        """Configuration -> its folds that trained fewer iterations than a network needs to learn."""
        out: dict[str, list[FoldSpending]] = {}
        for f in self.folds:
            if not f.learned:
                out.setdefault(f.configuration, []).append(f)
        return out

    def warnings(self, cv: Selection | None) -> list[str]:
        """Plain-words warnings: folds below the learning minimum, a chosen model that did not learn."""
        out = []
        for configuration, folds in self.below_minimum().items():
            its = sorted(f.iterations for f in folds)
            out.append(f"{configuration}: {len(folds)} fold(s) trained {its[0]}-{its[-1]} iterations, below the "
                       f"{folds[0].learning_iterations} a network needs to learn well; its results are unreliable. "
                       "What helps: a longer --time-budget, or fewer configurations (-c).")
        warning = cv.warning() if cv is not None else None
        return out + ([warning] if warning else [])


def run_spending(paths: DatasetPaths, configurations: Sequence[str] | None = None,
                 record: dict | None = None) -> RunSpending:
    """The run's spending from ``run.json`` (or ``record``) and the folds' files."""
    if record is None:
        try:
            record = read_json(paths.trained.run_record) if paths.trained.run_record.is_file() else {}
        except READ_ERRORS:
            record = {}
    names = configurations or record.get("configurations") or paths.trained.configurations_with_folds()
    folds = [s for c in names for f in paths.trained.folds(c) if (s := read_spending(f)) is not None]
    return RunSpending(record, folds)


def spending_section(spending: RunSpending, cv: Selection | None) -> str:
    """HTML: the warnings, the run's time and a table of folds."""
    if not spending.folds and not spending.record:
        return ""
    warnings = "".join(f'<p class="note"><b>Warning:</b> {esc(w)}</p>' for w in spending.warnings(cv))
    rows = [(f.configuration, f.fold, f.variant or "as planned", f"{f.iterations}", f"{f.learning_iterations}",
             "yes" if f.learned else "NO", f"{f.train_s:.0f}", f"{f.validation_s:.0f}", f"{f.overhead_s:.0f}",
             f"{f.wall_s:.0f}" + ("" if f.budget_s is None else f" / {f.budget_s:.0f}"))
            for f in spending.folds]
    header = ("configuration", "fold", "network", "iterations", "minimum to learn", "learned", "training s",
              "validation s", "other s", "wall s / budget s")
    return warnings + bullets(spending.overview()) + (text_table(header, rows) if rows else "")
