"""Read and write images: SimpleITK for medical formats, scikit-image for 2D natural images.

Every reader returns arrays indexed (C, z, y, x) plus a :class:`Geometry`; this module is the
only place where SimpleITK's (x, y, z) order is flipped to array order and back.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import SimpleITK as sitk

from autounet.io.atomic import atomic_path
from autounet.io.geometry import FLAT_AXIS_SPACING, Geometry, geometry_mismatches

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
        if not isinstance(override, str) or override not in READER_NAMES:
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


def check_nifti_data(path: Path, img: sitk.Image, arr: np.ndarray) -> None:
    """Catch what ITK's NIfTI reader hides: it fills a truncated file's missing data with zeros
    and turns NaN/Inf voxels into 0, silently.

    Raises ImageReadError when the file holds less data than its header declares; puts NaN/Inf
    back into ``arr`` (the array read by ITK, modified in place) where the file has them, so that
    verification reports them.
    """
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")) or not img.HasMetaDataKey("vox_offset"):
        return
    try:
        meta = {k: int(float(img.GetMetaData(k))) for k in ("vox_offset", "bitpix", "datatype", "dim[0]")}
        n_voxels = int(np.prod([int(img.GetMetaData(f"dim[{i}]")) for i in range(1, meta["dim[0]"] + 1)]))
    except (RuntimeError, ValueError):
        return
    expected = meta["vox_offset"] + n_voxels * meta["bitpix"] // 8
    float_type = {16: "f4", 64: "f8"}.get(meta["datatype"])  # NIFTI_TYPE_FLOAT32, NIFTI_TYPE_FLOAT64
    compressed = name.endswith(".gz")
    if float_type is None:  # no NaN possible: a cheap length check is enough
        if not compressed and path.stat().st_size >= expected:
            return
        if compressed:
            with open(path, "rb") as f:  # a gzip file ends with its uncompressed length mod 2**32
                f.seek(-4, 2)
                if int.from_bytes(f.read(4), "little") == expected % 2**32:
                    return
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            header = f.read(meta["vox_offset"])
            # sizeof_hdr is 348 (NIfTI-1) or 540 (NIfTI-2) in the file's byte order
            order = "<" if int.from_bytes(header[:4], "little") in (348, 540) else ">"
            dtype = np.dtype(order + (float_type or "u1"))
            n_read, chunk_items = 0, (1 << 24) // dtype.itemsize
            while chunk := f.read(chunk_items * dtype.itemsize):
                if float_type is not None:
                    values = np.frombuffer(chunk, dtype, count=len(chunk) // dtype.itemsize)
                    values = values[: max(0, n_voxels - n_read)]
                    bad = np.flatnonzero(~np.isfinite(values))
                    if bad.size and arr.size == n_voxels and np.issubdtype(arr.dtype, np.floating):
                        arr.reshape(-1)[n_read + bad] = values[bad]
                n_read += len(chunk) // dtype.itemsize
    except (OSError, EOFError, zlib.error) as e:
        raise ImageReadError(f"{path}: unreadable or truncated image ({e})") from e
    data_bytes = len(header) + n_read * dtype.itemsize
    if data_bytes < expected:
        raise ImageReadError(
            f"{path}: truncated image: it holds {data_bytes} of the {expected} bytes its header declares"
        )


def _read_sitk(path: Path) -> tuple[np.ndarray, Geometry]:
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise ImageReadError(f"{path}: unreadable or truncated image ({first})") from e
    return from_sitk(img, path)


def from_sitk(img: sitk.Image, path: Path | str) -> tuple[np.ndarray, Geometry]:
    """A SimpleITK image (read from a file, a DICOM series, or handed over in memory) as an array
    (1, Z, Y, X) and its geometry; ImageReadError naming ``path`` (the file, or what stands for it)
    for what autounet cannot take. The NIfTI data checks run where ``path`` is a file."""
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
    if isinstance(path, Path):
        check_nifti_data(path, img, arr)
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

    The geometry is the first file's; a file whose shape, spacing, origin or direction differs
    from it raises ImageReadError (verification reports every such file of a training set). A
    file holding NaN or Inf raises ImageReadError: no network output for such voxels would mean
    anything.
    """
    return stack_channels((p, *read_image(p, reader)) for p in paths)


def stack_channels(channels: Iterable[tuple[Path | str, np.ndarray, Geometry]]) -> tuple[np.ndarray, Geometry]:
    """Channels read one at a time (source, array (1, Z, Y, X), geometry) as one float32 array
    (C, Z, Y, X) and their geometry, with :func:`read_channels`' checks."""
    arrays, geometry, first = [], None, ""
    for p, arr, geo in channels:
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ImageReadError(f"{p}: {arr.size - np.count_nonzero(np.isfinite(arr))} NaN or Inf voxel(s); replace "
                                 "them (e.g. by the background value) before predicting")
        if geometry is None:
            geometry, first = geo, Path(str(p)).name
        elif mismatches := geometry_mismatches(geo, geometry):  # as verification refuses it in training data
            raise ImageReadError(f"{p}: {'; '.join(mismatches)} (mismatch with {first}); a case's channels "
                                 "must share one geometry: resample them onto the first channel's grid")
        arrays.append(arr.astype(np.float32, copy=False))
    assert geometry is not None, "read_channels needs at least one path"
    return np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0], geometry


LABEL_DTYPES = (np.int8, np.int16, np.int32, np.int64)


def read_segmentation(path: Path, reader: str) -> tuple[np.ndarray, Geometry]:
    """Read a label map as an integer array (Z, Y, X) of the smallest signed type that holds its
    values as they are in the file; non-integer values raise ImageReadError."""
    arr, geo = read_image(path, reader)
    if arr.shape[0] != 1:
        raise ImageReadError(f"{path}: a label map must have one channel, found {arr.shape[0]}")
    seg = arr[0]
    if not np.issubdtype(seg.dtype, np.integer):
        rounded = np.rint(seg)
        if not np.array_equal(rounded, seg):
            raise ImageReadError(f"{path}: label map holds non-integer values (dtype {seg.dtype})")
        seg = rounded
    low, high = seg.min(initial=0), seg.max(initial=0)
    for dtype in LABEL_DTYPES:  # the smallest that holds every value: a 16-bit mask's 65535 stays 65535
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return seg.astype(dtype), geo
    raise ImageReadError(f"{path}: label values from {low} to {high} do not fit a 64-bit integer")


def file_ending(path: Path) -> str:
    """The supported ending of ``path`` (".nii.gz" counts as one ending), else its last suffix."""
    name = Path(path).name.lower()
    for ending in sorted(SUPPORTED_ENDINGS, key=len, reverse=True):
        if name.endswith(ending):
            return ending
    return Path(path).suffix.lower()


def _write(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write (Z, Y, X), or (C, 1, Y, X) for a multi-channel natural image, atomically."""
    ending = file_ending(Path(path))
    with atomic_path(path, ending) as tmp:
        if ending in NATURAL_ENDINGS:
            from skimage import io as skio

            pixels = array[0] if array.ndim == 3 else np.moveaxis(array[:, 0], 0, -1)
            skio.imsave(str(tmp), pixels, check_contrast=False)
        else:
            sitk.WriteImage(to_sitk(array, geometry), str(tmp), useCompression=True)


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """An array (Z, Y, X) as a SimpleITK image with ``geometry``'s spacing, origin and direction
    (2D when the image was read as 2D)."""
    img = sitk.GetImageFromArray(array[0] if geometry.file_dims == 2 else array)
    spacing = geometry.spacing[1:] if geometry.file_dims == 2 else geometry.spacing
    img.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    img.SetOrigin(geometry.origin)
    img.SetDirection(geometry.direction)
    return img


def write_segmentation(seg: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a label map (Z, Y, X) with the geometry it was read with, in ``path``'s format."""
    seg = np.asarray(seg)
    low, high = seg.min(initial=0), seg.max(initial=0)
    dtype = np.uint8 if low >= 0 and high < 256 else np.uint16 if low >= 0 and high < 65536 else np.int32
    _write(seg.astype(dtype), geometry, path)  # instance maps: thousands of ids, 16 bits in a PNG


def write_image(image: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write one image file: (Z, Y, X), or (C, 1, Y, X) for an RGB natural image."""
    _write(np.asarray(image), geometry, path)
