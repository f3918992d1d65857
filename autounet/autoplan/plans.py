"""Typed, versioned, JSON-serialised fingerprint and plans.

These dataclasses are the contract between stages: ``fingerprint.json`` and ``plans.json``
hold exactly their ``to_json`` output. The network is described by explicit fields, enough to
rebuild it without any planning code (:mod:`autounet.model.network` does, for training and
inference alike). Runtime choices (device, fold, resume) never go into a plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from autounet.workspace import name_problem

FINGERPRINT_SCHEMA_VERSION = 1
PLANS_SCHEMA_VERSION = 1


def _tuples(x: Any) -> Any:
    """Lists -> tuples, recursively (JSON has no tuples; frozen dataclasses want them)."""
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    return x


def _versioned(d: dict[str, Any], expected: int, what: str, path: str | None) -> dict[str, Any]:
    """A JSON dict of the expected schema version, lists turned into tuples; else ValueError."""
    v = d.get("schema_version")
    if v != expected:
        where = f"{path}: " if path else ""
        raise ValueError(
            f"{where}{what} has schema_version {v!r}, this autounet reads version {expected}; "
            "re-run `autounet plan_and_preprocess` to regenerate it"
        )
    return _tuples(d)


class _JsonDataclass:
    """``to_json``: the dataclass as a dict of JSON types (what the files hold)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class CaseFingerprint:
    """Per-case facts: spacing (z, y, x) and the shape before and after cropping to non-zero."""

    case_id: str
    spacing: tuple[float, float, float]
    shape_before_crop: tuple[int, int, int]
    shape_after_crop: tuple[int, int, int]


@dataclass(frozen=True)
class IntensityStats:
    """Foreground intensity statistics of one channel, from a seeded sample of voxels."""

    mean: float
    median: float
    std: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float
    num_samples: int


@dataclass(frozen=True)
class Fingerprint(_JsonDataclass):
    """What the planner needs to know about a dataset (``fingerprint.json``)."""

    dataset_name: str
    file_dims: int
    channel_names: tuple[str, ...]
    cases: tuple[CaseFingerprint, ...]
    intensity: tuple[IntensityStats, ...]
    median_relative_size_after_crop: float
    source_signature: str = ""
    seed: int = 0
    task: str = "segmentation"
    class_counts: tuple[int, ...] = ()      # cases per class (classification) or positives per target (multilabel)
    target_mean: tuple[float, ...] = ()     # regression: per target, over the training cases
    target_std: tuple[float, ...] = ()
    schema_version: int = FINGERPRINT_SCHEMA_VERSION

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str | None = None) -> "Fingerprint":
        d = _versioned(d, FINGERPRINT_SCHEMA_VERSION, "fingerprint", path)
        return cls(
            **{**d, "cases": tuple(CaseFingerprint(**c) for c in d["cases"]),
               "intensity": tuple(IntensityStats(**s) for s in d["intensity"])}
        )


@dataclass(frozen=True)
class NetworkTopology:
    """A U-Net, explicitly: one entry per resolution stage, finest first.

    strides[0] is all ones (the first stage does not downsample); decoder stages mirror the
    encoder and each produces a deep-supervision output.
    """

    dims: int
    input_channels: int
    num_outputs: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    convs_per_stage_encoder: tuple[int, ...]
    convs_per_stage_decoder: tuple[int, ...]
    block: str = "plain"  # "plain" (conv-norm-nonlin x2) or "residual" (residual encoder)
    head: str = "segmentation"  # "segmentation" (the U-Net's decoder) or "pooled" (encoder, global pooling, linear)
    norm: str = "instance"      # "instance" or "batch" (case-level networks, which see whole images in a batch)

    @property
    def num_stages(self) -> int:
        return len(self.features_per_stage)

    @property
    def downsampling_factor(self) -> tuple[int, ...]:
        """Total downsampling per axis: the patch size must be divisible by it."""
        out = [1] * self.dims
        for s in self.strides:
            out = [o * si for o, si in zip(out, s)]
        return tuple(out)


@dataclass(frozen=True)
class ChannelNormalization:
    """How one channel is normalized.

    scheme : "ct" | "zscore" | "noNorm" | "rescale_to_0_1" | "rgb_to_0_1".
    use_nonzero_mask : z-score statistics (and output) only inside the non-zero region.
    clip_low, clip_high, mean, std : dataset-level values used by "ct".
    """

    scheme: str
    use_nonzero_mask: bool = False
    clip_low: float | None = None
    clip_high: float | None = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class StagePlan:
    """One configuration (``2d``, ``3d_fullres``, ``3d_lowres``, ``3d_cascade_fullres``).

    spacing : target spacing of the preprocessed arrays in transposed axis order (3 values;
        for ``2d`` the first value is None: slices keep their own spacing).
    median_shape : median array shape at that spacing (transposed, 3 values).
    patch_size : training patch, 2 values for 2d, 3 for 3d.
    data_identifier : the preprocessed folder this configuration reads.
    """

    name: str
    data_identifier: str
    spacing: tuple[float | None, float, float]
    median_shape: tuple[int, int, int]
    patch_size: tuple[int, ...]
    batch_size: int
    batch_dice: bool
    network: NetworkTopology
    estimated_memory_gb: float
    image_resampling_order: int = 3
    label_resampling: str = "linear_argmax"
    anisotropy_threshold: float = 3.0
    previous_stage: str | None = None
    mirror_axes: tuple[int, ...] = ()

    def preprocessing_key(self) -> dict[str, Any]:
        """The fields that determine the preprocessed arrays (for resuming safely)."""
        return {k: getattr(self, k) for k in ("spacing", "image_resampling_order", "label_resampling",
                                              "anisotropy_threshold")}


@dataclass(frozen=True)
class CaseTaskPlan:
    """How a case-level task is learnt (one label or number per case; rules in
    :mod:`autounet.autoplan.case_planner`).

    names : class names in value order (classification) or target names in column order.
    loss : "cross_entropy" | "binary_cross_entropy" | "smooth_l1" (on standardized targets).
    imbalance : "none" | "balanced_sampling" (every class drawn equally often) | "loss_weights".
    class_weights : multilabel positive weights (with "loss_weights").
    target_mean, target_std : regression targets are standardized with these for training.
    """

    task: str
    names: tuple[str, ...]
    loss: str
    imbalance: str = "none"
    class_weights: tuple[float, ...] = ()
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()


@dataclass(frozen=True)
class InstanceTaskPlan:
    """How objects are learnt: each object's voxels touching another object or the background are
    its boundary, the rest its interior (``classes``: what the network predicts), and the
    interiors seed the objects again after prediction (:mod:`autounet.postprocess.instances`).

    object_name : the dataset's name for its objects (dataset.json's label 1).
    """

    object_name: str
    classes: dict[str, int] = field(default_factory=lambda: dict(INSTANCE_CLASSES))


INSTANCE_CLASSES = {"background": 0, "interior": 1, "boundary": 2}


@dataclass(frozen=True)
class Plans(_JsonDataclass):
    """The whole plan of a dataset (``plans.json``)."""

    dataset_name: str
    planner: str
    channel_names: tuple[str, ...]
    labels: dict[str, Any]
    regions_class_order: tuple[int, ...] | None
    file_ending: str
    reader: str
    file_dims: int
    transpose_forward: tuple[int, int, int]
    transpose_backward: tuple[int, int, int]
    original_median_spacing: tuple[float, float, float]
    original_median_shape: tuple[int, int, int]
    normalization: tuple[ChannelNormalization, ...]
    configurations: dict[str, StagePlan]
    memory_target_gb: float
    foreground_labels: tuple[int, ...] = ()
    ignore_label: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    hardware: dict[str, Any] = field(default_factory=dict)  # what was detected when planning, and the target's source
    case_task: CaseTaskPlan | None = None  # a case-level task (classification, multilabel, regression); else None
    instance_task: InstanceTaskPlan | None = None  # objects told apart (task "instance"); else None
    schema_version: int = PLANS_SCHEMA_VERSION

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str | None = None) -> "Plans":
        d = _versioned(d, PLANS_SCHEMA_VERSION, "plans", path)
        wrong = [f"'{key}' must be {what}, not {type(d.get(key)).__name__}"
                 for key, kind, what in (("labels", dict, "an object"), ("configurations", dict, "an object"),
                                         ("normalization", (list, tuple), "a list"))
                 if not isinstance(d.get(key), kind)]
        if wrong:  # a hand-edited or hostile file: an error naming it, not an AttributeError later
            raise ValueError(f"{path or 'plans'}: {'; '.join(wrong)}")
        d["labels"] = {k: v for k, v in d["labels"].items()}
        d["normalization"] = tuple(ChannelNormalization(**n) for n in d["normalization"])
        if d.get("case_task") is not None:
            d["case_task"] = CaseTaskPlan(**d["case_task"])
        if d.get("instance_task") is not None:
            d["instance_task"] = InstanceTaskPlan(**d["instance_task"])
        d["configurations"] = {
            k: StagePlan(**{**c, "network": NetworkTopology(**c["network"])}) for k, c in d["configurations"].items()
        }
        problems = [name_problem(v, what) for name, c in d["configurations"].items() for v, what in (
            (name, "configuration"), (c.data_identifier, "data identifier"),
            (c.previous_stage or name, "previous stage"))]
        problems = [p for p in problems if p is not None]
        if problems:
            raise ValueError(f"{path or 'plans'}: {'; '.join(problems)}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def task(self) -> str:
        """"segmentation", "instance", or the case-level task."""
        if self.case_task is not None:
            return self.case_task.task
        return "instance" if self.instance_task is not None else "segmentation"

    @property
    def regions(self) -> list[tuple[int, ...]] | None:
        """Region-based training: the label values of each region, in order; else None."""
        if self.regions_class_order is None:
            return None
        return [tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in self.labels.items()
                if k not in ("background", "ignore")]

    @property
    def evaluation_classes(self) -> list[int | tuple[int, ...]]:
        """What Dice is reported for: each region, or each foreground label."""
        return list(self.regions) if self.regions is not None else list(self.foreground_labels)

    def preprocessing_hash(self, config: str) -> str:
        """A digest of everything that shapes ``config``'s preprocessed arrays."""
        key = {
            "transpose": self.transpose_forward,
            "normalization": [asdict(n) for n in self.normalization],
            "stage": self.configurations[config].preprocessing_key(),
            "file_dims": self.file_dims,
        }
        if self.case_task is not None:
            key["input_size"] = self.configurations[config].patch_size
        if self.instance_task is not None:
            key["labels"] = "instance classes"  # the label maps are converted, not copied
        if self.ignore_label is not None:
            key["locations"] = "annotated"  # background locations are recorded too (sparse annotations)
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_plans(path: Path) -> Plans:
    """Read ``plans.json``; the error names the file when it is missing or from another version."""
    from autounet.io.atomic import read_json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no plans; run `autounet plan_and_preprocess` first")
    return Plans.from_json(read_json(path), str(path))


def load_fingerprint(path: Path) -> Fingerprint:
    """Read ``fingerprint.json``."""
    from autounet.io.atomic import read_json

    return Fingerprint.from_json(read_json(Path(path)), str(path))
