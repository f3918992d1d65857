"""From predicted classes (background, interior, boundary) to objects, with rules chosen on the
cross-validation.

``seeds="interior"``: the connected components of the interior class (face connectivity), those
smaller than ``min_seed`` voxels dropped, are grown over the foreground (interior and boundary)
by a watershed on the distance to the background, so that touching objects stay apart.
``seeds="components"``: each connected component of the foreground is one object (what users of
a semantic model fall back to; kept as a candidate so that the cross-validation says whether the
boundary class helps). Either way, objects smaller than ``min_size`` voxels are removed and the
ids are renumbered 1..N.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from autounet.io.geometry import without_flat_axes
from autounet.postprocess.instance_metrics import instance_metrics
from autounet.postprocess.labelling import connected_components
from autounet.postprocess.metrics import foreground_dice, nanmean

INSTANCE_RULES_KIND = "instances"
SEED_FRACTIONS = (0.0, 0.05, 0.15)   # min_seed candidates: fractions of the median reference object
SIZE_FRACTIONS = (0.0, 0.1, 0.25)    # min_size candidates, likewise


@dataclass(frozen=True)
class InstanceRules:
    """How predicted classes become objects (see the module docstring)."""

    seeds: str = "interior"
    min_seed: int = 0
    min_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": INSTANCE_RULES_KIND, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "InstanceRules":
        if not isinstance(d, dict) or d.get("kind") != INSTANCE_RULES_KIND or d.get("seeds") not in ("interior", "components"):
            raise ValueError(f"not instance rules: {d!r}")
        return cls(str(d["seeds"]), int(d.get("min_seed", 0)), int(d.get("min_size", 0)))

    def describe(self) -> str:
        how = ("interiors grown over their boundaries" if self.seeds == "interior"
               else "each connected foreground component one object")
        return (f"{how}; seeds under {self.min_seed} voxels dropped" if self.seeds == "interior" else how) + \
            f"; objects under {self.min_size} voxels removed"


def _renumbered(ids: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(ids.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    table = np.zeros(len(sizes), np.int64)
    table[keep] = np.arange(1, int(keep.sum()) + 1)
    out = table[ids]
    return out.astype(np.uint16 if out.max(initial=0) < 65536 else np.int32)


def seeded_objects(seg: np.ndarray, seeds: str, min_seed: int) -> np.ndarray:
    """Object ids (not renumbered, no size filter) of a class map (0/1/2, any shape)."""
    shape = np.shape(seg)
    flat = without_flat_axes(np.asarray(seg))
    foreground = flat > 0
    if seeds == "components":
        return connected_components(foreground)[0].reshape(shape)
    markers, _ = ndimage.label(flat == 1)
    if min_seed > 1:
        sizes = np.bincount(markers.ravel())
        markers[(sizes < min_seed)[markers] & (markers > 0)] = 0
    if not markers.any():
        return np.zeros(shape, np.int64)
    distance = ndimage.distance_transform_edt(foreground)
    return watershed(-distance, markers, mask=foreground).reshape(shape)


def classes_to_instances(seg: np.ndarray, rules: InstanceRules = InstanceRules()) -> np.ndarray:
    """An instance map (0 background, objects 1..N; uint16 where it fits) of a class map."""
    return _renumbered(seeded_objects(seg, rules.seeds, rules.min_seed), rules.min_size)


def instance_postprocessor(rules: InstanceRules) -> Callable[[np.ndarray], np.ndarray]:
    """The function ``predict`` applies to each predicted class map."""
    return lambda seg: classes_to_instances(seg, rules)


def candidate_rules(median_object: float) -> list[InstanceRules]:
    """Every rule the cross-validation tries, scaled to the median reference object (voxels)."""
    sizes = sorted({int(f * median_object) for f in SIZE_FRACTIONS})
    seeds = sorted({int(f * median_object) for f in SEED_FRACTIONS})
    return ([InstanceRules("interior", s, m) for s, m in itertools.product(seeds, sizes)]
            + [InstanceRules("components", 0, m) for m in sizes])


def median_object_size(references: Sequence[np.ndarray]) -> float:
    """The median object size (voxels) over reference instance maps (1 when none has an object)."""
    sizes = [s for ref in references for s in np.bincount(np.asarray(ref).ravel().astype(np.int64))[1:] if s > 0]
    return float(np.median(sizes)) if sizes else 1.0


def score_rules(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray],
                rules: Sequence[InstanceRules]) -> list[dict[str, float]]:
    """Mean PQ, AJI and object F1 over the cases for each rule (objects seeded once per seed
    setting, filtered by size for each ``min_size``)."""
    out: list[dict[str, float]] = []
    seeded: dict[tuple[str, int], list[np.ndarray]] = {}
    for rule in rules:
        key = (rule.seeds, rule.min_seed)
        if key not in seeded:
            seeded[key] = [seeded_objects(p, *key) for p in predictions]
        per_case = [instance_metrics(_renumbered(o, rule.min_size), r) for o, r in zip(seeded[key], references)]
        out.append({m: nanmean([c[m] for c in per_case]) for m in ("pq", "aji", "object_f1", "instance_dice")})
    return out


def choose_rules(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> tuple[InstanceRules, list]:
    """The rule of highest mean PQ on the cross-validation (ties: the earlier, simpler one) and
    every rule's scores."""
    rules = candidate_rules(median_object_size(references))
    scores = score_rules(predictions, references, rules)
    best = max(range(len(rules)), key=lambda i: (np.nan_to_num(scores[i]["pq"], nan=-1.0), -i))
    return rules[best], [{"rules": r.to_json(), **s} for r, s in zip(rules, scores)]


def instance_scores(pred: np.ndarray, ref: np.ndarray, classes: Sequence = (), ignore_label: int | None = None
                    ) -> dict[str, dict[str, float]]:
    """A validation case's figures: the foreground Dice and the instance metrics of the objects
    seeded with the default rules, under the object class "1" (``classes`` and ``ignore_label``
    are the semantic plan's and do not apply to object ids)."""
    return {"1": {"dice": foreground_dice(pred, ref), **instance_metrics(classes_to_instances(pred), ref)}}
