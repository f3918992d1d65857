"""Read and write images: SimpleITK for medical formats, scikit-image for 2D natural images.

Every reader returns arrays indexed (C, z, y, x) plus a :class:`Geometry`; this module is the
only place where SimpleITK's (x, y, z) order is flipped to array order and back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autounet.io.geometry import FLAT_AXIS_SPACING, Geometry

SITK_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
NATURAL_ENDINGS = (".png", ".bmp", ".tif", ".tiff")
SUPPORTED_ENDINGS = SITK_ENDINGS + NATURAL_ENDINGS

# dataset.json's "overwrite_image_reader_writer" values (nnU-Net's names) -> our reader kinds
READER_NAMES = {
    "SimpleITKIO": "simpleitk",
    "NibabelIO": "simpleitk",
    "NibabelIOWithReorient": "simpleitk",
    "NaturalImage2DIO": "natural2d",
}


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file and the reason."""


def reader_for(file_ending: str, override: str | None = None) -> str:
    """Return the reader kind ("simpleitk" or "natural2d") for a file ending."""
    if override is not None:
        if override not in READER_NAMES:
            raise ValueError(
                f"overwrite_image_reader_writer '{override}' is not supported; "
                f"choose one of {sorted(READER_NAMES)}"
            )
        return READER_NAMES[override]
    ending = file_ending.lower()
    if ending in SITK_ENDINGS:
        return "simpleitk"
    if ending in NATURAL_ENDINGS:
        return "natural2d"
    raise ValueError(f"file ending '{file_ending}' is not supported; use one of {', '.join(SUPPORTED_ENDINGS)}")


def _read_sitk(path: Path) -> tuple[np.ndarray, Geometry]:
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise ImageReadError(f"{path}: unreadable or truncated image ({first})") from e
    dim = img.GetDimension()
    if dim == 4 or (dim == 3 and img.GetNumberOfComponentsPerPixel() > 1 and img.GetSize()[2] > 1):
        raise ImageReadError(
            f"{path}: 4D image of size {img.GetSize()} (components {img.GetNumberOfComponentsPerPixel()}); "
            "autounet takes 2D or 3D images: store each channel or time point as its own _XXXX file"
        )
    if dim not in (2, 3):
        raise ImageReadError(f"{path}: {dim}D image; autounet takes 2D or 3D images")
    if img.GetNumberOfComponentsPerPixel() > 1:
        raise ImageReadError(
            f"{path}: vector image with {img.GetNumberOfComponentsPerPixel()} components per voxel; "
            "store each channel as its own _XXXX file"
        )
    try:
        arr = sitk.GetArrayFromImage(img)
    except RuntimeError as e:
        raise ImageReadError(f"{path}: unreadable or truncated image ({e})") from e
    spacing = tuple(float(s) for s in reversed(img.GetSpacing()))
    if dim == 2:
        arr = arr[None]
        spacing = (FLAT_AXIS_SPACING,) + spacing
    geometry = Geometry(
        spacing=spacing,  # type: ignore[arg-type]
        origin=tuple(float(o) for o in img.GetOrigin()),
        direction=tuple(float(d) for d in img.GetDirection()),
        shape=tuple(int(s) for s in arr.shape),  # type: ignore[arg-type]
        file_dims=dim,
    )
    return arr[None], geometry


def _read_natural(path: Path) -> tuple[np.ndarray, Geometry]:
    from skimage import io as skio

    try:
        arr = np.asarray(skio.imread(str(path)))
    except Exception as e:  # PIL/tifffile raise many types for broken files
        raise ImageReadError(f"{path}: unreadable or truncated image ({e})") from e
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = np.moveaxis(arr, -1, 0)
    else:
        raise ImageReadError(
            f"{path}: array of shape {arr.shape}; a 2D image file must be grayscale (Y, X) or RGB(A) (Y, X, 3|4)"
        )
    geometry = Geometry(
        spacing=(FLAT_AXIS_SPACING, 1.0, 1.0),
        origin=(0.0, 0.0),
        direction=(1.0, 0.0, 0.0, 1.0),
        shape=(1,) + tuple(int(s) for s in arr.shape[1:]),  # type: ignore[arg-type]
        file_dims=2,
    )
    return arr[:, None], geometry


def read_image(path: Path, reader: str) -> tuple[np.ndarray, Geometry]:
    """Read one file as an array of shape (C, Z, Y, X) in its own dtype, plus its geometry.

    A medical image gives one channel; an RGB(A) natural image gives 3 (4).
    Raises :class:`ImageReadError` naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if reader == "simpleitk":
        return _read_sitk(path)
    if reader == "natural2d":
        return _read_natural(path)
    raise ValueError(f"unknown reader '{reader}'")


def read_channels(paths: list[Path], reader: str) -> tuple[np.ndarray, Geometry]:
    """Read a case's channel files into one float32 array (C, Z, Y, X).

    The geometry is the first file's; callers that need every mismatch reported use
    :func:`autounet.io.verify.verify_dataset` first.
    """
    arrays, geometry = [], None
    for p in paths:
        arr, geo = read_image(p, reader)
        if geometry is None:
            geometry = geo
        elif arr.shape[1:] != tuple(geometry.shape):
            raise ImageReadError(f"{p}: shape {arr.shape[1:]} differs from {paths[0]} {geometry.shape}")
        arrays.append(arr.astype(np.float32, copy=False))
    assert geometry is not None, "read_channels needs at least one path"
    return np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0], geometry


def read_segmentation(path: Path, reader: str) -> tuple[np.ndarray, Geometry]:
    """Read a label map as an integer array (Z, Y, X); non-integer values raise ImageReadError."""
    arr, geo = read_image(path, reader)
    if arr.shape[0] != 1:
        raise ImageReadError(f"{path}: a label map must have one channel, found {arr.shape[0]}")
    seg = arr[0]
    if not np.issubdtype(seg.dtype, np.integer):
        rounded = np.rint(seg)
        if not np.array_equal(rounded, seg):
            raise ImageReadError(f"{path}: label map holds non-integer values (dtype {seg.dtype})")
        seg = rounded
    return seg.astype(np.int16 if seg.max(initial=0) > 127 or seg.min(initial=0) < -128 else np.int8), geo


def file_ending(path: Path) -> str:
    """The supported ending of ``path`` (".nii.gz" counts as one ending), else its last suffix."""
    name = Path(path).name.lower()
    for ending in sorted(SUPPORTED_ENDINGS, key=len, reverse=True):
        if name.endswith(ending):
            return ending
    return Path(path).suffix.lower()


def _write(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write (Z, Y, X), or (C, 1, Y, X) for a multi-channel natural image, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ending = file_ending(path)
    tmp = path.with_name(f".{path.name[: -len(ending)]}.tmp{ending}")
    try:
        if ending in NATURAL_ENDINGS:
            from skimage import io as skio

            pixels = array[0] if array.ndim == 3 else np.moveaxis(array[:, 0], 0, -1)
            skio.imsave(str(tmp), pixels, check_contrast=False)
        else:
            img = sitk.GetImageFromArray(array[0] if geometry.file_dims == 2 else array)
            spacing = geometry.spacing[1:] if geometry.file_dims == 2 else geometry.spacing
            img.SetSpacing(tuple(float(s) for s in reversed(spacing)))
            img.SetOrigin(geometry.origin)
            img.SetDirection(geometry.direction)
            sitk.WriteImage(img, str(tmp), useCompression=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_segmentation(seg: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a label map (Z, Y, X) with the geometry it was read with, in ``path``'s format."""
    seg = np.asarray(seg)
    small = seg.min(initial=0) >= 0 and seg.max(initial=0) < 256
    _write(seg.astype(np.uint8 if small else np.int16), geometry, path)


def write_image(image: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write one image file: (Z, Y, X), or (C, 1, Y, X) for an RGB natural image."""
    _write(np.asarray(image), geometry, path)
