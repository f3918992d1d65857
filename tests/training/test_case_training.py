"""The pieces of case-level training: class-balanced sampling, standardized regression targets,
the loss of each task, and the pooled network's inputs and outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autounet.autoplan.case_planner import case_network
from autounet.autoplan.plans import CaseTaskPlan
from autounet.inference.case_predict import to_outputs
from autounet.model.classifier import CaseNetwork
from autounet.training.case_batches import CaseSampler, sampling_weights, standardized
from autounet.training.case_losses import CaseLoss

CLASSIFICATION = CaseTaskPlan("classification", ("common", "rare"), "cross_entropy", "balanced_sampling")


def one_to_nine(n: int = 100) -> tuple[list[np.ndarray], np.ndarray]:
    """2D inputs (C=1, Z=1, 4, 4) whose value is the case index; every tenth case is class 1."""
    data = [np.full((1, 1, 4, 4), i, dtype=np.float32) for i in range(n)]
    targets = np.array([[float(i % 10 == 0)] for i in range(n)])
    return data, targets


def test_balanced_sampling_draws_each_class_about_equally_often_from_a_1_to_9_set():
    data, targets = one_to_nine()
    weights = sampling_weights(targets, CLASSIFICATION)
    assert weights is not None and weights.sum() == pytest.approx(1.0)
    assert weights[targets[:, 0] == 1].sum() == pytest.approx(0.5)
    sampler = CaseSampler(data, targets.astype(np.float32), batch_size=8, dims=2, weights=weights)
    rng = np.random.default_rng(0)
    drawn = np.concatenate([sampler.sample(rng)["target"][:, 0] for _ in range(500)])  # 4000 draws
    assert 0.46 < drawn.mean() < 0.54, drawn.mean()
    uniform = CaseSampler(data, targets.astype(np.float32), batch_size=8, dims=2, weights=None)
    drawn = np.concatenate([uniform.sample(rng)["target"][:, 0] for _ in range(500)])
    assert 0.07 < drawn.mean() < 0.13, drawn.mean()


def test_sampling_is_uniform_unless_the_plan_balances():
    _, targets = one_to_nine()
    plan = CaseTaskPlan("classification", ("common", "rare"), "cross_entropy", "none")
    assert sampling_weights(targets, plan) is None


def test_a_batch_carries_each_case_with_its_own_target():
    data, targets = one_to_nine(30)
    sampler = CaseSampler(data, targets.astype(np.float32), batch_size=6, dims=2)
    batch = sampler.sample(np.random.default_rng(1))
    assert batch["data"].shape == (6, 1, 4, 4) and batch["data"].dtype == np.float32
    assert batch["target"].shape == (6, 1)
    case = batch["data"][:, 0, 0, 0].astype(int)
    assert np.array_equal(batch["target"][:, 0], (case % 10 == 0).astype(np.float32))
    ordered = list(sampler.in_order(4))
    assert [len(b["target"]) for b in ordered] == [4] * 7 + [2]
    assert np.concatenate([b["data"][:, 0, 0, 0] for b in ordered]).tolist() == list(range(30))


def test_3d_batches_keep_their_depth():
    data = [np.zeros((2, 3, 4, 5), np.float32)] * 3
    batch = CaseSampler(data, np.zeros((3, 1)), batch_size=2, dims=3).sample(np.random.default_rng(0))
    assert batch["data"].shape == (2, 2, 3, 4, 5)


def test_regression_targets_are_standardized_and_come_back_in_their_units():
    plan = CaseTaskPlan("regression", ("radius", "weight"), "smooth_l1", target_mean=(3.0, 70.0),
                        target_std=(0.5, 10.0))
    targets = np.array([[3.0, 70.0], [4.0, 50.0], [2.5, 85.0]])
    z = standardized(targets, plan)
    assert z.dtype == np.float32
    assert np.allclose(z, [[0.0, 0.0], [2.0, -2.0], [-1.0, 1.5]])
    assert np.allclose(to_outputs(torch.from_numpy(z), plan).numpy(), targets, atol=1e-5)


def test_classification_and_multilabel_targets_are_not_standardized():
    targets = np.array([[1.0], [0.0], [2.0]])
    assert np.array_equal(standardized(targets, CLASSIFICATION), targets.astype(np.float32))
    plan = CaseTaskPlan("multilabel", ("a", "b"), "binary_cross_entropy")
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert np.array_equal(standardized(labels, plan), labels.astype(np.float32))


def test_cross_entropy_is_torchs_on_the_class_column():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    target = torch.tensor([[0.0], [2.0], [1.0], [1.0], [0.0], [2.0]])
    plan = CaseTaskPlan("classification", ("a", "b", "c"), "cross_entropy")
    loss = CaseLoss(plan)(logits, target)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0, 2, 1, 1, 0, 2])).item(), rel=1e-6)
    assert CaseLoss(plan)(torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([[0.0]])).item() < 1e-6


def test_binary_cross_entropy_weights_the_positives_of_each_target():
    logits = torch.tensor([[0.5, -1.0], [-2.0, 3.0], [1.5, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    plan = CaseTaskPlan("multilabel", ("a", "b"), "binary_cross_entropy", "loss_weights", class_weights=(1.0, 10.0))
    loss = CaseLoss(plan)(logits, target)
    w = torch.tensor([1.0, 10.0])
    p = torch.sigmoid(logits)
    expected = -(w * target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = CaseLoss(CaseTaskPlan("multilabel", ("a", "b"), "binary_cross_entropy"))(logits, target)
    assert plain.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, target).item(), rel=1e-6)
    assert loss.item() > plain.item()


def test_smooth_l1_on_standardized_values():
    pred = torch.tensor([[0.0], [0.5], [3.0]])
    target = torch.tensor([[0.0], [0.0], [0.0]])
    loss = CaseLoss(CaseTaskPlan("regression", ("r",), "smooth_l1", target_mean=(0.0,), target_std=(1.0,)))
    # quadratic below 1 (0.5 * 0.25), linear above (3 - 0.5)
    assert loss(pred, target).item() == pytest.approx((0.0 + 0.125 + 2.5) / 3)


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown case-level loss"):
        CaseLoss(CaseTaskPlan("classification", ("a", "b"), "focal"))


@pytest.mark.parametrize("size,spacing,channels,outputs", [((28, 28), (1.0, 1.0), 1, 2),
                                                           ((30, 26), (1.0, 1.0), 3, 5),
                                                           ((12, 16, 16), (1.0, 1.0, 1.0), 2, 3),
                                                           ((6, 20, 18), (3.0, 1.0, 1.0), 1, 1)])
def test_case_network_gives_one_output_row_per_input(size, spacing, channels, outputs):
    topology = case_network(size, spacing, channels, outputs, base_features=8, cap=32, block="plain")
    network = CaseNetwork(topology).eval()
    with torch.no_grad():
        y = network(torch.randn(3, channels, *size))
    assert y.shape == (3, outputs)
    assert torch.isfinite(y).all()
    norms = [m for m in network.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))]
    assert norms and not [m for m in network.modules() if isinstance(m, torch.nn.modules.instancenorm._InstanceNorm)]


def test_case_network_refuses_a_wrong_channel_count_or_dimensionality():
    network = CaseNetwork(case_network((16, 16), (1.0, 1.0), 1, 2, 8, 32, "plain")).eval()
    with pytest.raises(ValueError, match="expected input of shape"):
        network(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="expected input of shape"):
        network(torch.randn(2, 1, 4, 16, 16))


def test_case_network_needs_a_pooled_topology():
    from dataclasses import replace

    topology = case_network((16, 16), (1.0, 1.0), 1, 2, 8, 32, "plain")
    with pytest.raises(ValueError, match="invalid case-level topology"):
        CaseNetwork(replace(topology, head="segmentation"))


class _Files:
    """Stand-in for a fold setup: case id -> the files of a preprocessed case in ``folder``."""

    def __init__(self, folder):
        self.folder = folder

    def case_arrays(self, case_id):
        from autounet.workspace import PreprocessedCase

        return PreprocessedCase(self.folder, case_id)


def _preprocessed(tmp_path, n: int) -> tuple[_Files, list[str]]:
    from autounet.io.atomic import write_json
    from autounet.workspace import PreprocessedCase

    ids = [f"c{i:03d}" for i in range(n)]
    for i, c in enumerate(ids):
        files = PreprocessedCase(tmp_path, c)
        np.save(files.data, np.full((1, 1, 4, 4), i, np.float32))
        write_json(files.meta, {"target": [i % 2]})
    return _Files(tmp_path), ids


def test_small_case_sets_are_held_in_memory_so_no_file_stays_open(tmp_path):
    from autounet.training.case_batches import open_cases

    setup, ids = _preprocessed(tmp_path, 6)
    data, targets = open_cases(setup, ids)
    assert not any(isinstance(x, np.memmap) for x in data)  # a memory map would keep its file open
    assert [float(x.max()) for x in data] == list(range(6)) and targets[:, 0].tolist() == [0, 1, 0, 1, 0, 1]


def test_large_case_sets_are_memory_mapped(tmp_path, monkeypatch):
    from autounet.training import case_batches

    monkeypatch.setattr(case_batches, "IN_MEMORY_BYTES", 0)
    setup, ids = _preprocessed(tmp_path, 3)
    data, _ = case_batches.open_cases(setup, ids)
    assert all(isinstance(x, np.memmap) for x in data)
