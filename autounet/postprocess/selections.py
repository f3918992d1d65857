"""The result of selection, typed: what was scored, what was chosen and how to predict with it.

A segmentation selection (foreground-mean Dice per entry, the chosen postprocessing) and a
case-level selection (a task's figures per entry, test-time mirroring and decision thresholds)
share one interface, so that the run, the API, the CLI and the report never test a dict for
keys: ``to_json`` (cross_validation.json), ``best_configuration`` (best_configuration.json),
``table()``, ``describe()``, ``details()``, ``headline()``, ``warning()`` and
``prediction_output`` (what ``predict -o`` names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from autounet.postprocess.components import describe_rules
from autounet.postprocess.instances import InstanceRules

NOT_LEARNED_DICE = 0.1  # a chosen model whose cross-validated foreground Dice is below this learned nothing
SUMMARY_KEYS = {"classification": ("auc", "accuracy", "balanced_accuracy"), "multilabel": ("auc", "accuracy", "f1_macro"),
                "regression": ("mae", "rmse", "r2")}


def summary_keys(task: str) -> tuple[str, ...]:
    """The figures that sum a case-level task's result up (tables, logs, the report)."""
    return SUMMARY_KEYS[task]


class Selection(Protocol):
    """What every task's selection result offers."""

    entries: dict[str, dict]
    best: str
    predict_command: str
    prediction_output: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...
    def best_configuration(self, postprocessing_file: str) -> dict[str, Any]: ...
    def table(self) -> str: ...
    def describe(self) -> str: ...
    def details(self) -> list[str]: ...
    def headline(self) -> str: ...
    def warning(self) -> str | None: ...


@dataclass(frozen=True)
class SegmentationSelection:
    """Configurations and pair ensembles scored by Dice on the cross-validation, the best, its postprocessing."""

    classes: list[str]
    entries: dict[str, dict]
    best: str
    postprocessing: dict           # {"rules": ..., "report": ...}
    after_postprocessing: float    # the best entry's foreground-mean Dice after its postprocessing
    predict_command: str
    prediction_output: ClassVar[str] = "OUTPUT"

    def to_json(self) -> dict[str, Any]:
        return {"classes": self.classes, "entries": self.entries, "best": self.best,
                "postprocessing": self.postprocessing,
                "foreground_mean_dice_after_postprocessing": self.after_postprocessing,
                "predict_command": self.predict_command}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SegmentationSelection":
        best = d["entries"][d["best"]]
        return cls(list(d.get("classes") or []), d["entries"], d["best"], d.get("postprocessing") or {},
                   d.get("foreground_mean_dice_after_postprocessing", best.get("foreground_mean_dice")),
                   d.get("predict_command", ""))

    def best_configuration(self, postprocessing_file: str) -> dict[str, Any]:
        entry = self.entries[self.best]
        return {"configurations": entry["members"], "folds": entry["folds"], "name": self.best,
                "foreground_mean_dice": entry["foreground_mean_dice"],
                "foreground_mean_dice_after_postprocessing": self.after_postprocessing,
                "postprocessing": postprocessing_file, "predict_command": self.predict_command}

    def table(self) -> str:
        """The cross-validation table, best first, as text."""
        rows = sorted(self.entries.items(), key=lambda kv: -kv[1]["foreground_mean_dice"])
        width = max(len(k) for k in self.entries) + 2
        lines = [f"  {'':<{width}}" + "".join(f"{'Dice ' + c:>10}" for c in self.classes) + f"{'fg mean':>10}"
                 + f"{'lesion F1':>11}"]
        for name, e in rows:
            mark = " <- best" if name == self.best else ""
            lines.append(f"  {name:<{width}}" + "".join(f"{e['mean_dice'].get(c, np.nan):>10.4f}" for c in self.classes)
                         + f"{e['foreground_mean_dice']:>10.4f}{e.get('foreground_mean_lesion_f1', np.nan):>11.4f}{mark}")
        return "\n".join(lines)

    def describe(self) -> str:
        return (f"{self.best}, foreground-mean Dice {self.entries[self.best]['foreground_mean_dice']:.4f} "
                f"({self.after_postprocessing:.4f} after postprocessing)")

    def details(self) -> list[str]:
        return describe_rules(self.postprocessing.get("rules", {}))

    def headline(self) -> str:
        return f"{self.best} (foreground mean Dice {_num(self.entries[self.best].get('foreground_mean_dice'))})"

    def warning(self) -> str | None:
        dice = self.entries[self.best].get("foreground_mean_dice")
        if isinstance(dice, (int, float)) and dice < NOT_LEARNED_DICE:
            return (f"the chosen model ({self.best}) did not learn: cross-validated foreground Dice {dice:.3f}. "
                    "Do not use its predictions; give the run more time.")
        return None


@dataclass(frozen=True)
class CaseSelection:
    """A case-level task's configurations and ensembles scored on the cross-validation, the best
    with its test-time mirroring and decision thresholds."""

    task: str
    names: list[str]
    entries: dict[str, dict]
    best: str
    predict_command: str
    prediction_output: ClassVar[str] = "predictions.csv"

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "names": self.names, "entries": self.entries, "best": self.best,
                "predict_command": self.predict_command}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CaseSelection":
        return cls(d["task"], list(d.get("names") or []), d["entries"], d["best"], d.get("predict_command", ""))

    def best_configuration(self, postprocessing_file: str) -> dict[str, Any]:
        entry = self.entries[self.best]
        return {"configurations": entry["members"], "folds": entry["folds"], "name": self.best,
                "mirror": entry["mirror"], "thresholds": entry["thresholds"], "task": self.task,
                "score": entry["score"], "predict_command": self.predict_command}

    def table(self) -> str:
        """One row per configuration or ensemble, the best marked."""
        keys = summary_keys(self.task)
        lines = [f"{'configuration':<28}" + "".join(f"{k:>19}" for k in keys) + "  mirroring"]
        for name, e in self.entries.items():
            mark = " *" if name == self.best else ""
            values = "".join(f"{e['metrics'].get(k, float('nan')):>19.4f}" for k in keys)
            lines.append(f"{name + mark:<28}{values}  {'/'.join('on' if m else 'off' for m in e['mirror'])}")
        return "\n".join(lines)

    def describe(self) -> str:
        entry = self.entries[self.best]
        m, mirror = entry["metrics"], "with" if all(entry["mirror"]) else "without"
        return f"{self.best} ({mirror} test-time mirroring), " + ", ".join(f"{k} {m[k]:.4f}" for k in summary_keys(self.task))

    def details(self) -> list[str]:
        return []  # a case-level task has no postprocessing

    def headline(self) -> str:
        m = self.entries[self.best]["metrics"]
        return f"{self.best} ({', '.join(f'{k} {_num(m.get(k))}' for k in summary_keys(self.task))})"

    def warning(self) -> str | None:
        return None


@dataclass(frozen=True)
class InstanceSelection:
    """An instance task's configurations and ensembles scored by the panoptic quality of the
    objects their cross-validation masks give, each with its best rule; the best."""

    object_name: str
    entries: dict[str, dict]
    best: str
    predict_command: str
    prediction_output: ClassVar[str] = "OUTPUT"
    task: ClassVar[str] = "instance"

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "object_name": self.object_name, "entries": self.entries, "best": self.best,
                "predict_command": self.predict_command}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "InstanceSelection":
        return cls(str(d.get("object_name", "object")), d["entries"], d["best"], d.get("predict_command", ""))

    def best_configuration(self, postprocessing_file: str) -> dict[str, Any]:
        entry = self.entries[self.best]
        return {"configurations": entry["members"], "folds": entry["folds"], "name": self.best, "task": self.task,
                "pq": entry["pq"], "aji": entry["aji"], "postprocessing": postprocessing_file,
                "predict_command": self.predict_command}

    def table(self) -> str:
        """One row per configuration or ensemble, best PQ first."""
        keys = ("pq", "aji", "object_f1", "instance_dice", "pq_connected_components")
        width = max(len(k) for k in self.entries) + 2
        lines = [f"  {'':<{width}}" + "".join(f"{k:>24}" for k in keys)]
        for name, e in sorted(self.entries.items(), key=lambda kv: -_value(kv[1].get("pq"))):
            mark = " <- best" if name == self.best else ""
            lines.append(f"  {name:<{width}}" + "".join(f"{e.get(k, np.nan):>24.4f}" for k in keys) + mark)
        return "\n".join(lines)

    def describe(self) -> str:
        e = self.entries[self.best]
        return (f"{self.best}, PQ {e['pq']:.4f}, AJI {e['aji']:.4f}, object F1 {e['object_f1']:.4f} "
                f"(connected components of the same masks: PQ {e.get('pq_connected_components', np.nan):.4f})")

    def details(self) -> list[str]:
        return [f"{self.object_name}s: " + InstanceRules.from_json(self.entries[self.best]["rules"]).describe()]

    def headline(self) -> str:
        e = self.entries[self.best]
        return f"{self.best} (PQ {_num(e.get('pq'))}, AJI {_num(e.get('aji'))})"

    def warning(self) -> str | None:
        pq = self.entries[self.best].get("pq")
        if isinstance(pq, (int, float)) and pq < NOT_LEARNED_DICE:
            return (f"the chosen model ({self.best}) found few objects: cross-validated PQ {pq:.3f}. Do not use its "
                    "predictions; give the run more time.")
        return None


def selection_from_json(d: dict[str, Any]) -> Selection:
    """The selection stored in cross_validation.json (a case-level or instance one names its task)."""
    if d.get("task") == InstanceSelection.task:
        return InstanceSelection.from_json(d)
    return CaseSelection.from_json(d) if "task" in d else SegmentationSelection.from_json(d)


def _value(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else -math.inf


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) and not math.isnan(v) else "–"
