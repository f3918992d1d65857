import numpy as np
import pytest
import torch

from autounet.training.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    RegionDiceBCELoss,
    deep_supervision_weights,
)

BIG = 50.0  # a logit this large makes the softmax/sigmoid exactly one-hot in float32


def onehot_logits(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 1, *S) labels -> (B, K, *S) logits of BIG on the labelled class, 0 elsewhere."""
    return BIG * torch.nn.functional.one_hot(labels[:, 0].long(), k).movedim(-1, 1).float()


def random_case(dims: int, k: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    spatial = (4, 6, 5)[-dims:]
    return torch.randn(2, k, *spatial, generator=g), torch.randint(0, k, (2, 1, *spatial), generator=g)


def oracle_dice_ce(logits, target, batch_dice, ignore=None, smooth=1e-5):
    """Straightforward numpy version of the intended definition."""
    x = logits.double().numpy()
    y = target[:, 0].numpy()
    k = x.shape[1]
    valid = np.ones(y.shape, bool) if ignore is None else y != ignore
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ce = []
    for b, *pos in zip(*np.nonzero(valid)):
        ce.append(-np.log(p[(b, y[(b, *pos)], *pos)]))
    ce = np.mean(ce) if ce else 0.0
    dices = []
    groups = [slice(None)] if batch_dice else [slice(b, b + 1) for b in range(x.shape[0])]
    for grp in groups:
        for c in range(1, k):
            pc = p[grp, c] * valid[grp]
            gc = (y[grp] == c) & valid[grp]
            tp, fp, fn = (pc * gc).sum(), (pc * ~gc).sum(), ((1 - pc) * gc).sum()
            dices.append((2 * tp + smooth) / (2 * tp + fp + fn + smooth))
    return ce + 1 - np.mean(dices)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("batch_dice", [True, False])
@pytest.mark.parametrize("ignore", [None, 3])
def test_dice_ce_matches_oracle(dims, batch_dice, ignore):
    logits, target = random_case(dims)
    if ignore is not None:
        target[..., :2] = ignore  # a band of ignored voxels, label 3 >= K = 3
    loss = DiceCELoss(batch_dice, ignore_label=ignore)(logits, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(oracle_dice_ce(logits, target, batch_dice, ignore), rel=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_perfect_prediction_is_the_minimum(dims, batch_dice):
    _, target = random_case(dims)
    loss = DiceCELoss(batch_dice)
    perfect = loss(onehot_logits(target, 3), target).item()
    assert perfect == pytest.approx(0.0, abs=1e-5)
    wrong = loss(onehot_logits((target + 1) % 3, 3), target).item()
    assert wrong > 1.0
    random = loss(torch.randn(2, 3, *target.shape[2:]), target).item()
    assert perfect < random < wrong


def test_batch_dice_differs_from_per_sample_dice_when_a_sample_has_no_foreground():
    # sample 0: foreground [1, 1, 0, 0] predicted exactly; sample 1: no foreground, one false positive
    target = torch.tensor([[[[1, 1, 0, 0]]], [[[0, 0, 0, 0]]]])
    pred = torch.tensor([[[[1, 1, 0, 0]]], [[[1, 0, 0, 0]]]])
    logits = onehot_logits(pred, 2)
    batch = DiceCELoss(batch_dice=True)(logits, target).item()
    per_sample = DiceCELoss(batch_dice=False)(logits, target).item()
    # identical CE; batch: tp=2, fp=1, fn=0 -> Dice 4/5; per sample: Dice 1 and ~0 -> mean 1/2
    assert per_sample - batch == pytest.approx((1 - 0.5) - (1 - 0.8), abs=1e-4)


def test_ignored_voxels_do_not_count():
    logits, target = random_case(3, seed=1)
    target[0, 0, 1:3] = 3
    ignored = (target == 3).expand_as(logits)
    loss = DiceCELoss(batch_dice=False, ignore_label=3)
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()
    assert torch.count_nonzero(x.grad[ignored]) == 0
    assert torch.count_nonzero(x.grad[~ignored]) > 0
    changed = logits.clone()
    changed[ignored] = 100 * torch.randn(int(ignored.sum()))
    assert loss(changed, target).item() == pytest.approx(value.item(), rel=1e-6)


def test_ignore_label_inside_the_class_range():
    logits, target = random_case(2, k=3, seed=2)
    target[1, 0, 0] = 2
    loss = DiceCELoss(batch_dice=True, ignore_label=2)(logits, target)
    assert loss.item() == pytest.approx(oracle_dice_ce(logits, target, True, ignore=2), rel=1e-5)


@pytest.mark.parametrize("batch_dice", [True, False])
def test_all_ignored_gives_zero(batch_dice):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 1, 4, 4), 3)
    loss = DiceCELoss(batch_dice, ignore_label=3)(x, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_under_autocast(dtype):
    logits, target = random_case(3)
    low = logits.to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = DiceCELoss(True, ignore_label=None)(low, target)
        b = RegionDiceBCELoss([(1, 2), (2,)], True)(low[:, :2], target)
    assert a.dtype == b.dtype == torch.float32 and torch.isfinite(a) and torch.isfinite(b)
    assert a.item() == pytest.approx(DiceCELoss(True)(low.float(), target).item(), rel=1e-6)


def oracle_region(logits, target, regions, batch_dice, ignore=None, smooth=1e-5):
    x = logits.double().numpy()
    y = target[:, 0].numpy()
    valid = np.ones(y.shape, bool) if ignore is None else y != ignore
    p = 1 / (1 + np.exp(-x))
    bce, dices = [], []
    groups = [slice(None)] if batch_dice else [slice(b, b + 1) for b in range(x.shape[0])]
    for r, labels in enumerate(regions):
        g = np.isin(y, labels)
        bce.append(-(g * np.log(p[:, r]) + (1 - g) * np.log(1 - p[:, r]))[valid])
        for grp in groups:
            pr, gr = p[grp, r] * valid[grp], g[grp] & valid[grp]
            tp, fp, fn = (pr * gr).sum(), (pr * ~gr).sum(), ((1 - pr) * gr).sum()
            dices.append((2 * tp + smooth) / (2 * tp + fp + fn + smooth))
    return np.concatenate(bce).mean() + 1 - np.mean(dices)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_region_loss_matches_oracle(dims, batch_dice):
    regions = [(1, 2), (2,)]  # "whole" and "core", BraTS-style nested regions
    logits, target = random_case(dims, k=2)
    _, labels = random_case(dims, k=4, seed=5)  # labels 0..3, 3 is ignored
    loss = RegionDiceBCELoss(regions, batch_dice, ignore_label=3)(logits, labels)
    assert loss.item() == pytest.approx(oracle_region(logits, labels, regions, batch_dice, 3), rel=1e-5)


def test_region_loss_on_hand_made_regions():
    regions = [(1, 2), (2,)]
    target = torch.tensor([[[[0, 1, 2, 2]]]])
    region_mask = torch.tensor([[[[0, 1, 1, 1]], [[0, 0, 1, 1]]]]).float()  # (1, 2, 1, 4)
    loss = RegionDiceBCELoss(regions, batch_dice=True)
    perfect = BIG * (2 * region_mask - 1)
    assert loss(perfect, target).item() == pytest.approx(0.0, abs=1e-5)
    # region 1 misses one of its two voxels: Dice 2/3 for it, BCE = 50 on 1 of 8 voxel-regions
    half = perfect.clone()
    half[0, 1, 0, 2] = -BIG
    assert loss(half, target).item() == pytest.approx(BIG / 8 + 1 - (1 + 2 / 3) / 2, rel=1e-4)
    # swapping the regions' predictions is worse than either
    assert loss(perfect.flip(1), target).item() > loss(half, target).item()


@pytest.mark.parametrize("n, expected", [
    (1, [1.0]), (2, [1.0, 0.0]), (3, [2 / 3, 1 / 3, 0.0]), (4, [4 / 7, 2 / 7, 1 / 7, 0.0]),
    (5, [8 / 15, 4 / 15, 2 / 15, 1 / 15, 0.0]),
])
def test_deep_supervision_weights(n, expected):
    w = deep_supervision_weights(n)
    assert w == pytest.approx(expected)
    assert sum(w) == pytest.approx(1.0)


@pytest.mark.parametrize("dims", [2, 3])
def test_deep_supervision_loss_is_the_weighted_sum(dims):
    g = torch.Generator().manual_seed(3)
    full = (8, 8, 12)[-dims:]
    target = torch.randint(0, 3, (2, 1, *full), generator=g)
    factors = [(1,) * dims, (1,) + (2,) * (dims - 1), (2,) * dims]  # first step anisotropic
    shapes = [tuple(s // f for s, f in zip(full, fac)) for fac in factors]
    outputs = [torch.randn(2, 3, *s, generator=g) for s in shapes]
    base = DiceCELoss(batch_dice=False)
    w = [0.5, 0.3, 0.2]
    expected = sum(
        wi * base(o, target[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in fac)])
        for wi, o, fac in zip(w, outputs, factors)
    )
    assert DeepSupervisionLoss(base, w)(outputs, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_deep_supervision_skips_zero_weights_and_checks_counts():
    target = torch.randint(0, 2, (1, 1, 8, 8))
    outputs = [torch.randn(1, 2, 8, 8, requires_grad=True), torch.randn(1, 2, 4, 4, requires_grad=True)]
    ds = DeepSupervisionLoss(DiceCELoss(True), deep_supervision_weights(2))
    loss = ds(outputs, target)
    assert loss.item() == pytest.approx(DiceCELoss(True)(outputs[0], target).item())
    loss.backward()
    # the zero-weight output does not change the loss but still gets a (zero) gradient: data-parallel
    # training needs every parameter to take part in the backward pass
    assert outputs[1].grad is not None and torch.count_nonzero(outputs[1].grad) == 0
    with pytest.raises(ValueError):
        ds(outputs[:1], target)
