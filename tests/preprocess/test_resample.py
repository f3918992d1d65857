import numpy as np
import pytest

from autounet.preprocess.resample import (anisotropic_axis, axis_weights, resample_image, resample_labels,
                                          target_shape)


def smooth_volume(shape):
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    return (np.sin(3 * grids[0]) + np.cos(2 * grids[1]) * grids[2]).astype(np.float32)


@pytest.mark.parametrize("kind", ["nearest", "linear", "cubic"])
def test_weights_rows_sum_to_one(kind):
    for n_in, n_out in [(5, 11), (11, 5), (7, 7), (1, 4)]:
        w = axis_weights(n_in, n_out, kind)
        assert w.shape == (n_out, n_in)
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)


def test_constant_image_stays_constant():
    img = np.full((2, 9, 13, 17), 7.5, np.float32)
    out = resample_image(img, (1.0, 1.0, 1.0), (0.7, 1.3, 0.45))
    assert out.shape == (2,) + target_shape((9, 13, 17), (1, 1, 1), (0.7, 1.3, 0.45))
    np.testing.assert_allclose(out, 7.5, atol=1e-4)


def test_round_trip_restores_smooth_image():
    f = smooth_volume((20, 30, 40))[None]
    up = resample_image(f, (1, 1, 1), (0.5, 0.5, 0.5))
    assert up.shape == (1, 40, 60, 80)
    back = resample_image(up, (0.5, 0.5, 0.5), (1, 1, 1))
    assert back.shape == f.shape
    inner = (slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
    assert np.abs(back[inner] - f[inner]).max() < 1e-3


def test_same_spacing_is_identity_without_copy():
    f = smooth_volume((5, 6, 7))[None]
    assert resample_image(f, (2, 1, 1), (2, 1, 1)) is f


def test_label_resampling_adds_no_values_and_round_trips():
    seg = np.zeros((12, 20, 20), np.int8)
    seg[3:9, 4:15, 5:16] = 1
    seg[5:7, 8:12, 8:12] = 3  # label 2 deliberately absent: linear interpolation must not create it
    up = resample_labels(seg, (1, 1, 1), (0.5, 0.5, 0.5))
    assert set(np.unique(up)) == {0, 1, 3}
    back = resample_labels(up, (0.5, 0.5, 0.5), (1, 1, 1))
    assert np.array_equal(back, seg)


def test_anisotropic_axis_uses_nearest_neighbour():
    assert anisotropic_axis((3.0, 0.8, 0.8), (3.0, 1.0, 1.0), 3.0) == 0
    assert anisotropic_axis((1.0, 1.0, 1.1), (1.0, 1.0, 1.0), 3.0) is None
    img = np.zeros((1, 4, 6, 6), np.float32)
    img[0, 1] = 10.0  # one bright slice
    out = resample_image(img, (4.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    # nearest along z: slice values are copied, never blended into neighbours
    assert set(np.unique(out)) <= {0.0, 10.0}
    assert out.shape == (1, 8, 6, 6)


def test_none_target_keeps_axis():
    img = smooth_volume((6, 10, 10))[None]
    out = resample_image(img, (2.5, 1.0, 1.0), (None, 0.5, 0.5))
    assert out.shape == (1, 6, 20, 20)
