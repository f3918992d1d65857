"""What an autounet ONNX model holds besides its networks, readable without torch.

One ``.onnx`` file holds every fold of every configuration (an ensemble has several; a cascade
brings its previous stage): one input per configuration, ``image:CONFIG`` (batch, channels,
*patch), float32, and one output per fold, ``logits:CONFIG:FOLD`` (batch, classes, *patch). The
file's metadata entry ``autounet`` (and the JSON written beside the file) is a
:class:`OnnxManifest`: each configuration's plans (target spacing, axis order, normalization
with its statistics, patch, mirror axes, labels or regions), the folds, the postprocessing rules
and the dataset.json, which is everything autounet's prediction needs besides the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from autounet.autoplan.plans import Plans
from autounet.errors import AutounetError
from autounet.workspace import name_problem

FORMAT, VERSION = "autounet-onnx", 1
METADATA_KEY = "autounet"
OPSET = 17


def input_name(configuration: str) -> str:
    """The graph input that takes a configuration's windows."""
    return f"image:{configuration}"


def output_name(configuration: str, fold: str) -> str:
    """The graph output with one fold's logits."""
    return f"logits:{configuration}:{fold}"


@dataclass(frozen=True)
class OnnxManifest:
    """An ONNX model's contents besides the weights (see the module docstring).

    configurations : what is predicted (several are averaged); stages : those plus the previous
    stages of cascades, each with its plans.
    """

    configurations: tuple[str, ...]
    stages: tuple[str, ...]
    folds: tuple[str, ...]
    plans: dict[str, Plans]
    postprocessing: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    autounet_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "autounet": self.autounet_version,
                "configurations": list(self.configurations), "stages": list(self.stages), "folds": list(self.folds),
                "inputs": {s: input_name(s) for s in self.stages},
                "outputs": {s: {f: output_name(s, f) for f in self.folds} for s in self.stages},
                "plans": {s: p.to_json() for s, p in self.plans.items()},
                "postprocessing": self.postprocessing, "dataset": self.dataset, "opset": OPSET}

    @classmethod
    def from_json(cls, d: Any, source: str) -> "OnnxManifest":
        """Parse and check a manifest; AutounetError naming ``source`` when it is not one."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise AutounetError(f"{source}: not an autounet ONNX model (no '{METADATA_KEY}' metadata of format "
                                f"{FORMAT}); export it with `autounet export_model DATASET -o model.onnx`")
        if d.get("version") != VERSION:
            raise AutounetError(f"{source}: autounet ONNX format version {d.get('version')!r}; this autounet reads "
                                f"version {VERSION}")
        try:
            configurations, stages = tuple(d["configurations"]), tuple(d["stages"])
            folds = tuple(str(f) for f in d["folds"])
            plans = {s: Plans.from_json(d["plans"][s]) for s in stages}
        except (KeyError, TypeError, ValueError) as e:
            raise AutounetError(f"{source}: damaged autounet metadata ({type(e).__name__}: {e})") from e
        problems = [name_problem(c, "configuration") for c in stages] + [name_problem(f, "fold") for f in folds]
        problems = [p for p in problems if p is not None]
        if not set(configurations) <= set(stages):
            problems.append("a configuration to predict is not among the stages")
        for s in stages:
            stage = plans[s].configurations.get(s)
            if stage is None or (stage.previous_stage and stage.previous_stage not in stages):
                problems.append(f"the plans of {s} lack it or its previous stage")
        if not problems:
            problems += _cycles(plans, stages)
        if problems or not configurations or not folds:
            raise AutounetError(f"{source}: {'; '.join(problems) or 'no configurations or folds'}")
        return cls(configurations, stages, folds, plans, d.get("postprocessing"), d.get("dataset"),
                   str(d.get("autounet", "")))

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)


def _cycles(plans: dict[str, Plans], stages: tuple[str, ...]) -> list[str]:
    """Stages whose chain of previous stages comes back to itself (a hostile file's; a cascade
    has one previous stage, which has none)."""
    problems = []
    for s in stages:
        seen, current = [s], plans[s].configurations[s].previous_stage
        while current:
            if current in seen:
                problems.append(f"the previous stages of {s} form a cycle ({' -> '.join(seen + [current])})")
                break
            seen.append(current)
            current = plans[current].configurations[current].previous_stage
    return problems
