"""The geometry of one case: everything needed to map arrays back onto the original image.

Arrays in autounet are always indexed (z, y, x) — 2D images get a leading axis of size 1 — and
``spacing`` follows that array order. ``origin`` and ``direction`` stay in the file's own
physical (ITK, x-first) convention because autounet only ever hands them back to the writer.
The (x, y, z) <-> (z, y, x) flip happens in :mod:`autounet.io.image_io` and nowhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

# Spacing given to the missing axis of 2D images (PNG, 2D NIfTI). It is large so that the
# planner treats the axis as "never resample, never pool" without any special case.
FLAT_AXIS_SPACING = 999.0

Box = tuple[tuple[int, int], ...]  # ((z0, z1), (y0, y1), (x0, x1)), end exclusive


def nonzero_box(image: np.ndarray) -> Box:
    """Bounding box of voxels non-zero in any channel: where a case's content is.

    image : ndarray of shape (C, Z, Y, X). An all-zero image keeps its full extent. The
    fingerprint measures it and preprocessing crops to it, so both take it from here.
    """
    mask = np.any(image != 0, axis=0)
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        box.append((int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, mask.shape[axis]))
    return tuple(box)


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """Crop the last ``len(box)`` axes of ``array`` to ``box`` (a view)."""
    lead = (slice(None),) * (array.ndim - len(box))
    return array[lead + tuple(slice(a, b) for a, b in box)]


@dataclass(frozen=True)
class Geometry:
    """Spacing, origin, direction, original shape, crop box and transpose of one case.

    spacing : voxel size per array axis (z, y, x), in the file's units (usually mm).
    origin, direction : as the file stores them (ITK order; 2 or 3 / 4 or 9 values).
    shape : array shape (z, y, x) of the image as read.
    file_dims : 2 for images stored as 2D (PNG, 2D NIfTI), else 3.
    crop_box : ((z0, z1), (y0, y1), (x0, x1)) of the non-zero crop, in original array indices.
    transpose : axis permutation applied after cropping (``array.transpose(transpose)``).
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    shape: tuple[int, int, int]
    file_dims: int = 3
    crop_box: Box | None = None
    transpose: tuple[int, int, int] = (0, 1, 2)

    def with_crop(self, crop_box: Box) -> "Geometry":
        return replace(self, crop_box=tuple((int(a), int(b)) for a, b in crop_box))

    def with_transpose(self, transpose: tuple[int, ...]) -> "Geometry":
        return replace(self, transpose=tuple(int(t) for t in transpose))

    @property
    def cropped_shape(self) -> tuple[int, int, int]:
        if self.crop_box is None:
            return self.shape
        return tuple(b - a for a, b in self.crop_box)  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Geometry":
        crop = d.get("crop_box")
        return cls(
            spacing=tuple(float(s) for s in d["spacing"]),
            origin=tuple(float(o) for o in d["origin"]),
            direction=tuple(float(x) for x in d["direction"]),
            shape=tuple(int(s) for s in d["shape"]),
            file_dims=int(d.get("file_dims", 3)),
            crop_box=None if crop is None else tuple((int(a), int(b)) for a, b in crop),
            transpose=tuple(int(t) for t in d.get("transpose", (0, 1, 2))),
        )


def geometry_mismatches(geo: Geometry, ref: Geometry) -> list[str]:
    """Human-readable differences in shape, spacing, origin or direction (with tolerances)."""
    out = []
    if tuple(geo.shape) != tuple(ref.shape):
        out.append(f"shape {geo.shape} != {ref.shape}")
    if not np.allclose(geo.spacing, ref.spacing, rtol=1e-4, atol=1e-6):
        out.append(f"spacing {geo.spacing} != {ref.spacing}")
    if len(geo.origin) != len(ref.origin) or not np.allclose(geo.origin, ref.origin, rtol=0, atol=1e-3):
        out.append(f"origin {geo.origin} != {ref.origin}")
    if len(geo.direction) != len(ref.direction) or not np.allclose(geo.direction, ref.direction, atol=1e-4):
        out.append(f"direction {geo.direction} != {ref.direction}")
    return out


def without_flat_axes(array: np.ndarray) -> np.ndarray:
    """``array`` with its axes of length 1 left out (a 2D image stored as (1, Y, X) becomes (Y, X)),
    so that neighbourhoods are those of the image's real axes; reshape back with ``array.shape``."""
    flat = tuple(a for a, n in enumerate(array.shape) if n == 1)
    return np.squeeze(array, axis=flat) if flat and array.ndim > 2 else array
