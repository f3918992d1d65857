import pytest
import torch

from autounet.autoplan.plans import NetworkTopology
from autounet.model.build import build_network


def topo_3d(block: str = "plain", features: tuple[int, ...] = (4, 8, 16)) -> NetworkTopology:
    """3 anisotropic stages: the first axis is only downsampled at the last stage."""
    return NetworkTopology(
        dims=3, input_channels=2, num_outputs=3, features_per_stage=features,
        kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)), strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
        convs_per_stage_encoder=(1, 2, 2) if block == "residual" else (2, 2, 2),
        convs_per_stage_decoder=(1, 2), block=block,
    )


def topo_2d(block: str = "plain") -> NetworkTopology:
    """4 stages, the last one pools only the second axis."""
    return NetworkTopology(
        dims=2, input_channels=1, num_outputs=2, features_per_stage=(4, 8, 16, 16),
        kernel_sizes=((3, 3),) * 4, strides=((1, 1), (2, 2), (2, 2), (1, 2)),
        convs_per_stage_encoder=(1, 2, 3, 2) if block == "residual" else (2, 2, 2, 2),
        convs_per_stage_decoder=(2, 2, 1), block=block,
    )


@pytest.mark.parametrize("block", ["plain", "residual"])
def test_3d_deep_supervision_shapes(block):
    t = topo_3d(block)
    assert t.downsampling_factor == (2, 4, 4)
    net = build_network(t)
    out = net(torch.randn(2, 2, 4, 8, 12))
    assert isinstance(out, list)
    assert [tuple(o.shape) for o in out] == [(2, 3, 4, 8, 12), (2, 3, 4, 4, 6)]


@pytest.mark.parametrize("block", ["plain", "residual"])
def test_2d_deep_supervision_shapes(block):
    t = topo_2d(block)
    assert t.downsampling_factor == (4, 8)
    out = build_network(t)(torch.randn(3, 1, 8, 16))
    assert [tuple(o.shape) for o in out] == [(3, 2, 8, 16), (3, 2, 4, 8), (3, 2, 2, 4)]


@pytest.mark.parametrize("make", [topo_2d, topo_3d])
@pytest.mark.parametrize("block", ["plain", "residual"])
def test_without_deep_supervision_returns_full_resolution_tensor(make, block):
    t = make(block)
    shape = tuple(2 * f for f in t.downsampling_factor)
    x = torch.randn(1, t.input_channels, *shape)
    net = build_network(t, deep_supervision=False).eval()
    single = net(x)
    assert isinstance(single, torch.Tensor) and single.shape == (1, t.num_outputs, *shape)
    net.deep_supervision = True  # switchable after construction, same weights
    with torch.no_grad():
        full = net(x)[0]
    assert torch.allclose(full, single.detach(), atol=1e-5)


@pytest.mark.parametrize("block", ["plain", "residual"])
def test_backward_reaches_every_parameter(block):
    net = build_network(topo_3d(block))
    outs = net(torch.randn(2, 2, 4, 8, 8))
    sum(o.square().mean() for o in outs).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_parameter_count_grows_with_features():
    def count(features):
        return sum(p.numel() for p in build_network(topo_3d(features=features)).parameters())

    assert count((4, 8, 16)) < count((8, 16, 32)) < count((16, 32, 64))


def test_residual_encoder_has_more_parameters_than_plain_with_same_convs():
    plain = topo_2d("plain")
    residual = NetworkTopology(**{**plain.__dict__, "block": "residual"})
    n_plain = sum(p.numel() for p in build_network(plain).parameters())
    n_res = sum(p.numel() for p in build_network(residual).parameters())
    assert n_res > n_plain  # two convs per residual block, plus stem and projection skips


def test_init_zero_biases_and_he_scaled_weights():
    torch.manual_seed(0)
    net = build_network(topo_3d(features=(32, 64, 128)))
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            assert torch.count_nonzero(m.bias) == 0
    conv = net.encoder[2][0][0]  # 64 -> 128 channels, kernel 3x3x3
    fan_in = 64 * 27
    expected_std = (2 / (1 + 0.01**2) / fan_in) ** 0.5
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.05


def test_strided_conv_downsampling_and_no_pooling_in_plain_net():
    net = build_network(topo_3d())
    assert not any(isinstance(m, (torch.nn.MaxPool3d, torch.nn.AvgPool3d)) for m in net.modules())
    assert net.encoder[1][0][0].stride == (1, 2, 2) and net.encoder[1][1][0].stride == (1, 1, 1)
    assert net.encoder[0][0][0].kernel_size == (1, 3, 3)


def test_input_not_divisible_is_rejected():
    with pytest.raises(ValueError, match="divisible"):
        build_network(topo_3d())(torch.randn(1, 2, 3, 8, 8))


def test_inconsistent_topology_is_rejected():
    t = topo_3d()
    bad = NetworkTopology(**{**t.__dict__, "convs_per_stage_decoder": (2, 2, 2)})
    with pytest.raises(ValueError, match="convs_per_stage_decoder"):
        build_network(bad)
    with pytest.raises(ValueError, match="block"):
        build_network(NetworkTopology(**{**t.__dict__, "block": "dense"}))
