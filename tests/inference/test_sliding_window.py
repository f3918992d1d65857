"""The sliding window, tested with analytic stand-in predictors."""

import numpy as np
import pytest
import torch

from autounet.inference.sliding_window import gaussian_importance, sliding_window_predict, window_starts


@pytest.mark.parametrize("shape,patch", [((37, 29), (16, 16)), ((23, 41, 19), (8, 16, 12)), ((5, 7), (8, 8)),
                                         ((9, 30, 31), (9, 12, 10))])
@pytest.mark.parametrize("step", [0.5, 0.33, 1.0])
def test_constant_predictor_gives_that_constant_everywhere(shape, patch, step):
    image = torch.randn((2,) + shape)

    def constant(x):
        return torch.full((x.shape[0], 3) + tuple(x.shape[2:]), 2.5)

    out = sliding_window_predict(image, constant, patch, 3, step=step, batch_size=3)
    assert out.shape == (3,) + shape
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


def test_linear_predictor_is_reproduced_and_mirroring_is_exact():
    image = torch.randn(1, 21, 26)

    def double(x):
        return 2 * x

    out = sliding_window_predict(image, double, (8, 8), 1, 0.5, batch_size=4, mirror_axes=(0, 1))
    torch.testing.assert_close(out, 2 * image, rtol=1e-5, atol=1e-5)


def test_window_starts_cover_the_image_with_the_step():
    for size, patch, step in [(100, 32, 0.5), (33, 32, 0.5), (32, 32, 0.5), (10, 32, 0.5), (97, 20, 0.25)]:
        starts = window_starts(size, patch, step)
        assert starts[0] == 0 and starts[-1] == max(0, size - patch)
        assert all(b - a <= patch * step + 1e-9 for a, b in zip(starts, starts[1:]))


def test_gaussian_sigma_is_an_eighth_of_the_patch():
    g = gaussian_importance((64,)).numpy()
    assert g.max() == 1 and g.min() > 0
    centre = 31.5
    x = np.arange(64) - centre
    expected = np.exp(-(x**2) / (2 * 8.0**2))
    np.testing.assert_allclose(g, expected / expected.max(), rtol=1e-5)
