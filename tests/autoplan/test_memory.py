"""The memory estimate is calibrated on the networks nnU-Net plans for an 8 GB GPU."""

from autounet.autoplan.memory import GIB, estimate_training_bytes, max_batch_size
from autounet.autoplan.plans import NetworkTopology
from autounet.autoplan.topology import features_per_stage, pooling_and_kernels


def unet(patch, cap):
    strides, kernels = pooling_and_kernels(patch, (1.0,) * len(patch))
    n = len(strides)
    return NetworkTopology(len(patch), 1, 3, features_per_stage(n, 32, cap), kernels, strides, (2,) * n, (2,) * (n - 1))


def test_reference_networks_fit_8gb():
    net3 = unet((128, 128, 128), 320)
    net2 = unet((512, 512), 512)
    assert 6.5 * GIB < estimate_training_bytes((128,) * 3, net3, 2) <= 8 * GIB
    assert 6.5 * GIB < estimate_training_bytes((512, 512), net2, 12) <= 8 * GIB
    assert max_batch_size((128,) * 3, net3, 8 * GIB) == 2
    assert max_batch_size((512, 512), net2, 8 * GIB) == 12


def test_estimate_grows_with_batch_and_patch():
    net = unet((64, 64, 64), 320)
    assert estimate_training_bytes((64,) * 3, net, 4) > estimate_training_bytes((64,) * 3, net, 2)
    assert estimate_training_bytes((96,) * 3, net, 2) > estimate_training_bytes((64,) * 3, net, 2)
