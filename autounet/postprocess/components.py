"""Connected-component postprocessing: keep only the largest object (of all foreground, or of a class).

Connectivity is full: voxels touching by a face, an edge or a corner belong to the same
component (26-connectivity in 3D; a 2D image stored as (1, Y, X) therefore gets 8-connectivity).
Full connectivity keeps thin diagonal structures (vessels, oblique boundaries of anisotropic
scans) in one piece, so that removing "small components" does not cut an object apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autounet.postprocess.labelling import connected_components
from autounet.postprocess.metrics import Class, class_label, class_mask, class_name

SCHEMA_VERSION = 1


def _label_value(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"a class must be a label value (int) or a list of label values, got {value!r}")
    if int(value) == 0:
        raise ValueError("background (label 0) cannot be part of a postprocessing class")
    return int(value)


def normalize_class(cls: Any) -> Class:
    """A class as this package stores it: an int label value, or a tuple of ints for a region.

    JSON gives regions as lists; numpy gives integer scalars. Background (0) cannot be a class.
    """
    if isinstance(cls, (list, tuple)):
        if not cls:
            raise ValueError("a region class needs at least one label value, got an empty list")
        return tuple(_label_value(v) for v in cls)
    return _label_value(cls)


@dataclass(frozen=True)
class PostprocessingRules:
    """Which largest-component filters to apply to a predicted label map.

    keep_largest_foreground: all foreground labels form one object; only its largest connected
        component is kept, voxels of every other component become background.
    keep_largest_per_class: classes (label values, or tuples of label values for regions) whose
        largest connected component alone is kept; their other voxels become background (0).
        Applied in this order, after the foreground rule.
    """

    keep_largest_foreground: bool = False
    keep_largest_per_class: tuple = ()

    def __post_init__(self) -> None:
        if not isinstance(self.keep_largest_foreground, (bool, np.bool_)):
            raise ValueError(f"keep_largest_foreground must be true or false, got {self.keep_largest_foreground!r}")
        if isinstance(self.keep_largest_per_class, (str, bytes)) or not isinstance(
                self.keep_largest_per_class, Sequence):
            raise ValueError(f"keep_largest_per_class must be a list of classes, got {self.keep_largest_per_class!r}")
        object.__setattr__(self, "keep_largest_foreground", bool(self.keep_largest_foreground))
        object.__setattr__(self, "keep_largest_per_class",
                           tuple(normalize_class(c) for c in self.keep_largest_per_class))

    @property
    def is_identity(self) -> bool:
        """True when applying the rules changes nothing."""
        return not self.keep_largest_foreground and not self.keep_largest_per_class

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "keep_largest_foreground": self.keep_largest_foreground,
            "keep_largest_per_class": [list(c) if isinstance(c, tuple) else c for c in self.keep_largest_per_class],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PostprocessingRules":
        if not isinstance(d, dict):
            raise ValueError(f"postprocessing rules must be a JSON object, got {type(d).__name__}")
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"postprocessing rules have schema_version {version}; "
                             f"this autounet reads {SCHEMA_VERSION}")
        unknown = set(d) - {"schema_version", "keep_largest_foreground", "keep_largest_per_class"}
        if unknown:
            raise ValueError(f"postprocessing rules have unknown fields {sorted(unknown)}")
        return cls(keep_largest_foreground=d.get("keep_largest_foreground", False),
                   keep_largest_per_class=d.get("keep_largest_per_class", ()))


def _bounding_slices(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel (None for an empty mask); two passes over the array."""
    first = mask.any(axis=tuple(range(1, mask.ndim)))  # along axis 0
    if not first.any():
        return None
    rest = mask.any(axis=0)  # the other axes, projected
    along = [first] + [rest.any(axis=tuple(a for a in range(rest.ndim) if a != axis)) for axis in range(rest.ndim)]
    return tuple(slice(int(np.flatnonzero(a)[0]), int(np.flatnonzero(a)[-1]) + 1) for a in along)


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of a binary mask.

    mask : ndarray of shape (Z, Y, X) (a 2D image as (1, Y, X)) or (Y, X); nonzero is foreground.
    Returns a new bool array of the same shape. Full connectivity (26 in 3D, 8 in 2D); an empty
    mask gives an empty mask; among equally large components the first one labelled is kept.
    Only the bounding box of the mask is labelled, so small objects in big volumes are cheap.
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"keep_largest_component takes a 2D or 3D mask, got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    out = np.zeros(mask.shape, bool)
    box = _bounding_slices(mask)
    if box is None:
        return out
    crop = np.ascontiguousarray(mask[box])
    labels, n = connected_components(crop)
    if n == 1:  # one component: the whole mask
        out[box] = crop
        return out
    # count only the foreground's labels when it is sparse (noise spread over a big volume)
    sparse = np.count_nonzero(crop) < crop.size // 4
    counts = np.bincount(labels[crop] if sparse else labels.ravel(), minlength=n + 1)
    counts[0] = 0
    out[box] = labels == np.argmax(counts)
    return out


def _keep_largest_of(seg: np.ndarray, mask: np.ndarray) -> None:
    """Set the voxels of ``mask`` outside its largest component to background, in place."""
    seg[mask & ~keep_largest_component(mask)] = 0


def apply_rules(seg: np.ndarray, rules: PostprocessingRules) -> np.ndarray:
    """Apply ``rules`` to a label map (Z, Y, X); returns a new array of the same dtype.

    The foreground rule runs first, then the per-class rules in their order. For a region the
    mask is the union of its label values, and its removed voxels become 0.
    """
    out = np.array(seg, copy=True)
    if rules.keep_largest_foreground:
        _keep_largest_of(out, out != 0)
    for cls in rules.keep_largest_per_class:
        _keep_largest_of(out, class_mask(out, cls))
    return out


def describe_rules(rules: dict[str, Any], names: dict[str, str] | None = None) -> list[str]:
    """Rules (as in postprocessing.json) as sentences, one per rule; empty rules say so.

    names : class key -> label name (see :func:`autounet.postprocess.metrics.class_names`).
    Fields this version does not know are listed as they are.
    """
    names = names or {}
    out = []
    if rules.get("keep_largest_foreground"):
        out.append("Keep only the largest connected component of the whole foreground (all classes together); "
                   "smaller foreground components are set to background.")
    for item in rules.get("keep_largest_per_class") or []:
        out.append(f"For {class_label(class_name(item), names)}: keep only its largest connected component; "
                   "the class's other components are set to background.")
    known = ("keep_largest_foreground", "keep_largest_per_class", "schema_version")
    for key, value in rules.items():
        if key not in known and value not in (None, False, [], {}):
            out.append(f"{key}: {json.dumps(value)}")
    if not out:
        out.append("No postprocessing: removing connected components did not improve the cross-validation Dice.")
    return out
