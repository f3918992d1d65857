"""Lighter versions of a planned network, for time budgets that cannot train the planned one.

The planner owns them: each variant is a :class:`StagePlan` derived from the planned stage by a
fixed rule, with its cost relative to the planned network (activation volume, which tracks the
convolutions' arithmetic; one measurement of the planned network gives every variant's speed).

In order, heaviest first:
- ``planned``: the network of ``plans.json``;
- ``half-features``: half the features per stage (at least 8);
- ``shallower``: half the features and one stage fewer (networks with more than 3 stages);
- ``half-patch``: the lightest of the above with half the patch along every axis that allows it.

Only ``half-patch`` loses context: a structure recognised by its surroundings may no longer fit.
Measured: on a real 3D MRI set (volumes of about 36x50x35) the half-patch variant reached a
test Dice of 0.61 after 6,750 iterations where the full patch with half the features reached
0.79 after 627; on the 3D example (one fold, 60 s, float32) it found the small lesion that the
full-patch variants had not learnt yet (0.62 vs 0.00) but segmented the organ worse (0.50 vs
0.81). Budgets therefore take it only when no full-patch variant can learn at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autounet.autoplan.memory import GIB, activation_elements, estimate_training_bytes
from autounet.autoplan.plans import NetworkTopology, StagePlan
from autounet.autoplan.topology import pad_to_multiple

VARIANTS = ("planned", "half-features", "shallower", "half-patch")
DESCRIPTIONS = {"planned": "the planned network", "half-features": "half the features",
                "shallower": "half the features, one stage fewer",
                "half-patch": "half the features, one stage fewer where possible, half the patch"}


@dataclass(frozen=True)
class Variant:
    """One version of a configuration's network: its name, stage and cost relative to the plan."""

    name: str
    stage: StagePlan
    relative_cost: float   # work per training step, the planned network = 1
    keeps_context: bool    # the planned patch size

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.name]


def _with_network(stage: StagePlan, net: NetworkTopology, patch: tuple[int, ...]) -> StagePlan:
    return replace(stage, network=net, patch_size=patch,
                   estimated_memory_gb=round(estimate_training_bytes(patch, net, stage.batch_size) / GIB, 3))


def _cost(stage: StagePlan) -> int:
    return activation_elements(stage.patch_size, stage.network) * stage.batch_size


def network_variants(stage: StagePlan) -> list[Variant]:
    """The planned network and its lighter variants, heaviest first (see the module docstring)."""
    net = stage.network
    stages = [("planned", stage)]
    half = replace(net, features_per_stage=tuple(max(8, f // 2) for f in net.features_per_stage))
    stages.append(("half-features", _with_network(stage, half, stage.patch_size)))
    if net.num_stages > 3:
        n = net.num_stages - 1
        shallow = replace(half, features_per_stage=half.features_per_stage[:n], kernel_sizes=net.kernel_sizes[:n],
                          strides=net.strides[:n], convs_per_stage_encoder=net.convs_per_stage_encoder[:n],
                          convs_per_stage_decoder=net.convs_per_stage_decoder[:max(0, n - 1)])
        stages.append(("shallower", _with_network(stage, shallow, stage.patch_size)))
    last = stages[-1][1].network
    if net.head != "pooled":  # a case-level network takes the whole preprocessed image: its input size stays
        smaller = tuple(pad_to_multiple([p // 2], [f])[0] if p >= 2 * f else p
                        for p, f in zip(stage.patch_size, last.downsampling_factor))
        if smaller != tuple(stage.patch_size):
            stages.append(("half-patch", _with_network(stage, last, smaller)))
    planned = _cost(stage)
    return [Variant(name, s, _cost(s) / planned, s.patch_size == stage.patch_size) for name, s in stages]


def variant(stage: StagePlan, name: str) -> Variant:
    """The named variant of a planned stage; a name this stage has no variant of raises ValueError."""
    found = {v.name: v for v in network_variants(stage)}
    if name not in found:
        raise ValueError(f"network variant '{name}' does not exist for this configuration; it has: "
                         f"{', '.join(found)}")
    return found[name]
