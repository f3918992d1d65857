"""Image reading: what SimpleITK's NIfTI reader hides (NaN/Inf, truncation) is seen; 2D/RGB/4D."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from skimage import io as skio

from autounet.io.image_io import ImageReadError, read_image, read_segmentation, reader_for


def write_nifti(path: Path, arr: np.ndarray) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing([0.5 + i for i in range(arr.ndim)])
    sitk.WriteImage(img, str(path), useCompression=True)
    return path


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_survive_reading_nifti(tmp_path: Path, ending: str, dtype):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(5, 6, 7)).astype(dtype)
    arr[1, 2, 3], arr[4, 5, 6], arr[0, 0, 0] = np.nan, np.inf, -np.inf
    path = write_nifti(tmp_path / f"img{ending}", arr)
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).any()  # ITK zeroes them
    out, geo = read_image(path, "simpleitk")
    assert out.shape == (1, 5, 6, 7) and geo.shape == (5, 6, 7)
    assert np.array_equal(out[0], arr, equal_nan=True)  # every voxel, non-finite ones included


def test_nan_survives_reading_2d_nifti(tmp_path: Path):
    arr = np.ones((6, 7), np.float32)
    arr[5, 6] = np.nan
    out, geo = read_image(write_nifti(tmp_path / "img.nii.gz", arr), "simpleitk")
    assert out.shape == (1, 1, 6, 7) and geo.file_dims == 2
    assert np.argwhere(np.isnan(out)).tolist() == [[0, 0, 5, 6]]


def _big_endian_nifti(path: Path, arr: np.ndarray) -> None:
    """A minimal big-endian NIfTI-1 file (ITK writes little-endian only) holding float32 ``arr``."""
    hdr = bytearray(352)
    hdr[0:4] = np.array(348, ">i4").tobytes()
    dims = np.zeros(8, ">i2")
    dims[0], dims[1:4] = 3, arr.shape[::-1]
    hdr[40:56] = dims.tobytes()
    hdr[70:72] = np.array(16, ">i2").tobytes()  # datatype FLOAT32
    hdr[72:74] = np.array(32, ">i2").tobytes()  # bitpix
    hdr[76:108] = np.array([1, 1, 1, 1, 1, 1, 1, 1], ">f4").tobytes()  # pixdim
    hdr[108:112] = np.array(352, ">f4").tobytes()  # vox_offset
    hdr[112:116] = np.array(1, ">f4").tobytes()  # scl_slope
    hdr[344:348] = b"n+1\0"
    path.write_bytes(gzip.compress(bytes(hdr) + arr.astype(">f4").tobytes()))


def test_nan_survives_reading_big_endian_nifti(tmp_path: Path):
    arr = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    arr[2, 3, 1] = np.nan
    path = tmp_path / "big.nii.gz"
    _big_endian_nifti(path, arr)
    out, _ = read_image(path, "simpleitk")
    assert np.array_equal(out[0], arr, equal_nan=True)


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_nifti_is_refused(tmp_path: Path, ending: str, dtype, keep: float):
    path = write_nifti(tmp_path / f"img{ending}", np.arange(4000).reshape(10, 20, 20).astype(dtype))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path, "simpleitk")
    assert path.name in str(info.value)


def test_truncated_label_is_refused(tmp_path: Path):
    path = write_nifti(tmp_path / "seg.nii.gz", (np.arange(4000).reshape(10, 20, 20) % 3).astype(np.uint8))
    path.write_bytes(path.read_bytes()[:-6])  # only the gzip trailer is cut
    with pytest.raises(ImageReadError, match="truncated"):
        read_segmentation(path, "simpleitk")


def test_multi_member_gzip_nifti_is_accepted(tmp_path: Path):
    arr = np.arange(4000, dtype=np.int16).reshape(10, 20, 20)
    path = write_nifti(tmp_path / "img.nii.gz", arr)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # e.g. written by bgzip
    out, _ = read_image(path, "simpleitk")
    assert np.array_equal(out[0], arr)


def test_nifti_with_trailing_bytes_is_accepted(tmp_path: Path):
    arr = np.arange(4000, dtype=np.float32).reshape(10, 20, 20)
    path = write_nifti(tmp_path / "img.nii", arr)
    path.write_bytes(path.read_bytes() + b"\0\0\0")
    out, _ = read_image(path, "simpleitk")
    assert np.array_equal(out[0], arr)


def test_garbage_file_is_unreadable(tmp_path: Path):
    path = tmp_path / "img.nii.gz"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="unreadable") as info:
        read_image(path, "simpleitk")
    assert "img.nii.gz" in str(info.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nothing.nii.gz", "simpleitk")


def test_4d_nifti_is_refused(tmp_path: Path):
    img = sitk.GetImageFromArray(np.zeros((2, 4, 5, 6)), isVector=False)
    assert img.GetDimension() == 4
    path = tmp_path / "img.nii.gz"
    sitk.WriteImage(img, str(path))
    with pytest.raises(ImageReadError, match="4D") as info:
        read_image(path, "simpleitk")
    assert "img.nii.gz" in str(info.value)


def test_rgb_png_is_three_channels_and_gray_png_is_one(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 255, (12, 9, 3), dtype=np.uint8)
    skio.imsave(str(tmp_path / "rgb.png"), rgb, check_contrast=False)
    skio.imsave(str(tmp_path / "gray.png"), rgb[..., 0], check_contrast=False)
    out, geo = read_image(tmp_path / "rgb.png", "natural2d")
    assert out.shape == (3, 1, 12, 9) and geo.shape == (1, 12, 9) and geo.file_dims == 2
    assert np.array_equal(out[:, 0], np.moveaxis(rgb, -1, 0))
    out, _ = read_image(tmp_path / "gray.png", "natural2d")
    assert out.shape == (1, 1, 12, 9)
    with pytest.raises(ImageReadError, match="one channel"):
        read_segmentation(tmp_path / "rgb.png", "natural2d")


def test_truncated_png_is_refused(tmp_path: Path):
    pix = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    path = tmp_path / "img.png"
    skio.imsave(str(path), pix, check_contrast=False)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path, "natural2d")
    assert "img.png" in str(info.value)


def test_non_integer_label_map_is_refused(tmp_path: Path):
    path = write_nifti(tmp_path / "seg.nii.gz", np.full((3, 4, 5), 0.5, np.float32))
    with pytest.raises(ImageReadError, match="non-integer"):
        read_segmentation(path, "simpleitk")


@pytest.mark.parametrize("override", [["SimpleITKIO"], 5, "NoSuchIO"])
def test_bad_reader_override_is_a_clear_value_error(override):
    with pytest.raises(ValueError, match="overwrite_image_reader_writer"):
        reader_for(".nii.gz", override)


@pytest.mark.parametrize("name", ["scan_0000.tif", "scan_0000.nii.gz"])
def test_non_finite_voxels_of_an_input_are_refused(tmp_path: Path, name: str):
    """What prediction reads (read_channels): a NaN or Inf voxel makes the file bad input, naming it."""
    from autounet.io.image_io import read_channels

    arr = np.ones((16, 16), np.float32)
    arr[3, 4] = np.inf
    path = tmp_path / name
    if name.endswith(".tif"):
        skio.imsave(str(path), arr, check_contrast=False)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(arr[None]), str(path))
    with pytest.raises(ImageReadError, match=rf"{name}: 1 NaN or Inf voxel"):
        read_channels([path], reader_for(name[name.index("."):]))


@pytest.mark.parametrize("change, keyword", [(lambda img: img.SetSpacing((1.0, 1.0, 2.5)), "spacing"),
                                             (lambda img: img.SetOrigin((0.0, 0.0, 7.0)), "origin"),
                                             (lambda img: img.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1)), "direction")],
                         ids=["spacing", "origin", "direction"])
def test_channels_of_another_geometry_are_refused_at_prediction(tmp_path: Path, change, keyword: str):
    """Training data with such a channel fails verification; prediction stacked it silently."""
    from autounet.io.image_io import read_channels

    arr = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    first, second = tmp_path / "case_0000.nii.gz", tmp_path / "case_0001.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(first))
    other = sitk.GetImageFromArray(arr)
    change(other)
    sitk.WriteImage(other, str(second))
    with pytest.raises(ImageReadError, match=rf"case_0001.nii.gz: {keyword} .*mismatch with case_0000.nii.gz"):
        read_channels([first, second], reader_for(".nii.gz"))
    images, _ = read_channels([first, first], reader_for(".nii.gz"))  # one geometry: stacked
    assert images.shape == (2, 4, 5, 6)
