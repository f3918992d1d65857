"""Prediction from Python, without files: :class:`Predictor`, loaded once and reused.

    from autounet import Predictor
    predictor = Predictor.from_results("Dataset900_Demo")       # or Predictor.from_model("model.zip")
    result = predictor.predict(volume, spacing=(3.0, 0.8, 0.8))  # volume: (Z, Y, X) numpy array
    result.mask                                                  # (Z, Y, X) labels, the input's grid

Arrays are indexed as ``SimpleITK.GetArrayFromImage`` gives them: (Z, Y, X) for a 3D model and
(Y, X) for a 2D one, with a leading channel axis when the model takes several channels.
``spacing`` follows the array's axes (z, y, x); ``origin`` and ``direction`` are SimpleITK's
(x first) and only travel with the result. A SimpleITK image (or a list of them, one per
channel) carries its own geometry. Each step is the one `autounet predict` takes for a file
holding the same image (tests/test_predictor.py checks it voxel for voxel).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autounet.inference.cases import ArrayCase
from autounet.inference.settings import PredictSettings
from autounet.inference.tasks import Prediction
from autounet.io.geometry import FLAT_AXIS_SPACING, Geometry
from autounet.io.image_io import ImageReadError, from_sitk, stack_channels
from autounet.predictor.loaded import LoadedModel, load_model


class Predictor:
    """A trained model loaded once; :meth:`predict` answers one image at a time."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._ids = itertools.count()

    @classmethod
    def from_results(cls, dataset: str | int | Path, configurations: Sequence[str] | None = None,
                     folds: Sequence[str | int] | None = None, checkpoint: str = "final", device: str = "auto",
                     settings: PredictSettings | None = None, postprocessing: bool = True,
                     root: Path | None = None) -> "Predictor":
        """A dataset's trained model: the chosen best configuration or ensemble with its
        postprocessing (as `autounet predict -d` uses), or the ``configurations`` given."""
        settings = _with_device(settings, device)
        return cls(load_model(str(dataset), None, configurations, [str(f) for f in folds] if folds else None,
                              checkpoint, settings, postprocessing, root))

    @classmethod
    def from_model(cls, path: str | Path, device: str = "auto", settings: PredictSettings | None = None,
                   postprocessing: bool = True) -> "Predictor":
        """An exported model: a zip (`autounet export_model`) or an ``.onnx`` file (CPU, no torch)."""
        return cls(load_model(None, Path(path), settings=_with_device(settings, device), postprocessing=postprocessing))

    @property
    def labels(self) -> dict[str, Any]:
        """The model's labels (name -> value), as in its dataset.json."""
        return dict(self.loaded.plans.labels)

    def predict(self, image: Any, spacing: Sequence[float] | None = None, origin: Sequence[float] | None = None,
                direction: Sequence[float] | None = None, probabilities: bool = False) -> Prediction:
        """Predict one image: a numpy array (see the module docstring), a SimpleITK image, or a
        list of SimpleITK images (one per channel). Returns a :class:`Prediction`: ``mask`` in the
        input's shape and geometry (and ``probabilities`` (K, ...) when asked for), or for a
        case-level model its ``label`` and ``probabilities`` (classification) or ``values``."""
        images, geometry = self._images(image, spacing, origin, direction)
        case = ArrayCase(f"array_{next(self._ids)}", images, geometry)
        loaded = self.loaded
        result = loaded.task.predict_one(loaded.networks, loaded.source, case, loaded.settings, loaded.postprocess,
                                         probabilities)
        if result.mask is None:
            return result
        flat = geometry.file_dims == 2
        return Prediction(mask=result.mask[0] if flat else result.mask, geometry=geometry,
                          probabilities=result.probabilities[:, 0] if flat and result.probabilities is not None
                          else result.probabilities)

    def _images(self, image: Any, spacing, origin, direction) -> tuple[np.ndarray, Geometry]:
        """The images (C, Z, Y, X) float32 and geometry, checked as files are when read."""
        import SimpleITK as sitk

        if isinstance(image, sitk.Image) or (isinstance(image, (list, tuple)) and image
                                             and all(isinstance(i, sitk.Image) for i in image)):
            if spacing is not None or origin is not None or direction is not None:
                raise ValueError("a SimpleITK image carries its own spacing, origin and direction; pass none of them")
            channels = [image] if isinstance(image, sitk.Image) else list(image)
            return stack_channels((f"<image channel {i}>", *from_sitk(c, f"<image channel {i}>"))
                                  for i, c in enumerate(channels))
        return array_images(np.asarray(image), self.loaded.plans.file_dims, spacing, origin, direction)


def array_images(array: np.ndarray, file_dims: int, spacing: Sequence[float] | None,
                 origin: Sequence[float] | None, direction: Sequence[float] | None) -> tuple[np.ndarray, Geometry]:
    """A numpy image for a model trained on ``file_dims``-D images as channels (C, Z, Y, X) and
    the geometry a file holding it would have."""
    if array.ndim not in (file_dims, file_dims + 1):
        raise ImageReadError(f"<array>: shape {array.shape}; a {file_dims}D model takes "
                             + ("(Y, X) or (C, Y, X)" if file_dims == 2 else "(Z, Y, X) or (C, Z, Y, X)"))
    channels = array[None] if array.ndim == file_dims else array
    if spacing is None and file_dims == 3:
        raise ValueError("a 3D array needs its spacing (z, y, x), e.g. spacing=(3.0, 0.8, 0.8)")
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0, 1.0)))
    if len(spacing) != file_dims or min(spacing) <= 0:
        raise ValueError(f"spacing {spacing}: {file_dims} positive values, one per array axis, are needed")
    origin = tuple(float(o) for o in (origin if origin is not None else (0.0,) * file_dims))
    identity = tuple(float(v) for v in np.eye(file_dims).ravel())
    direction = tuple(float(d) for d in (direction if direction is not None else identity))
    if len(origin) != file_dims or len(direction) != file_dims ** 2:
        raise ValueError(f"origin needs {file_dims} values and direction {file_dims ** 2} (SimpleITK's order)")
    if file_dims == 2:
        channels, spacing = channels[:, None], (FLAT_AXIS_SPACING,) + spacing
    geometry = Geometry(spacing, origin, direction, tuple(int(s) for s in channels.shape[1:]), file_dims)
    return stack_channels(("<array>", c[None], geometry) for c in channels)


def _with_device(settings: PredictSettings | None, device: str) -> PredictSettings:
    """The settings with the device asked for (a device given in ``settings`` wins over "auto")."""
    from dataclasses import replace

    settings = settings or PredictSettings()
    return settings if device == "auto" else replace(settings, device=device)
