import numpy as np

from autounet.io.geometry import crop, nonzero_box
from autounet.preprocess.crop import nonzero_mask, uncrop


def test_crop_then_uncrop_restores_image():
    rng = np.random.default_rng(0)
    img = np.zeros((2, 10, 12, 14), np.float32)
    img[0, 2:7, 3:9, 1:12] = rng.random((5, 6, 11)) + 1
    img[1, 4:8, 5:6, 2:3] = 3
    box = nonzero_box(img)
    assert box == ((2, 8), (3, 9), (1, 12))
    cropped = crop(img, box)
    assert cropped.shape == (2, 6, 6, 11)
    assert np.array_equal(uncrop(np.array(cropped), box, img.shape[1:]), img)


def test_empty_image_keeps_full_extent():
    img = np.zeros((1, 4, 5, 6), np.float32)
    assert nonzero_box(img) == ((0, 4), (0, 5), (0, 6))


def test_nonzero_mask_fills_enclosed_holes():
    img = np.zeros((1, 7, 7, 7), np.float32)
    img[0, 1:6, 1:6, 1:6] = 1
    img[0, 3, 3, 3] = 0  # an enclosed zero voxel is inside the object
    mask = nonzero_mask(img)
    assert mask[3, 3, 3] and not mask[0, 0, 0]
