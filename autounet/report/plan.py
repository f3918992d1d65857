"""Section 1, the plan: dataset facts, one table per configuration, normalization, plan notes.

A fold trained with a time budget may have used a lighter variant of its configuration's
network (see :mod:`autounet.training.budget`); its checkpoint holds the stage as trained. Where
that differs from the plan, the configuration's table is followed by the fields that differ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from autounet.autoplan.plans import ChannelNormalization, Plans, StagePlan
from autounet.model.checkpoint import peek_checkpoint, trained_stage
from autounet.report.markup import CHECKPOINTS, READ_ERRORS, bullets, esc, note, num, seq, text_table
from autounet.workspace import ResultsPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedStage:
    """The stage a configuration was trained with, and the checkpoint it was read from."""

    stage: StagePlan
    fold: str
    source: str  # the checkpoint's file name


def stage_rows(stage: StagePlan) -> list[tuple[str, str]]:
    """(field, value) pairs describing a configuration, as plain text."""
    net = stage.network
    rows = [
        ("data folder", stage.data_identifier),
        ("patch size", seq(stage.patch_size)),
        ("batch size", str(stage.batch_size)),
        ("target spacing", seq(stage.spacing)),
        ("median shape at that spacing", seq(stage.median_shape)),
        ("network", f"{net.dims}D U-Net, {net.block} blocks, {net.input_channels} input channel(s), "
                    f"{net.num_outputs} outputs"),
        ("stages", str(net.num_stages)),
        ("features per stage", " – ".join(map(str, net.features_per_stage))),
        ("kernel sizes", ", ".join(seq(k) for k in net.kernel_sizes)),
        ("strides", ", ".join(seq(s) for s in net.strides)),
        ("total downsampling", seq(net.downsampling_factor)),
        ("convolutions per stage (encoder / decoder)",
         f"{'-'.join(map(str, net.convs_per_stage_encoder))} / {'-'.join(map(str, net.convs_per_stage_decoder))}"),
        ("estimated memory", f"{stage.estimated_memory_gb:.2f} GB"),
        ("batch Dice", "yes" if stage.batch_dice else "no"),
        ("mirror axes (test-time augmentation)", seq(stage.mirror_axes) if stage.mirror_axes else "none"),
        ("resampling (image order / labels)", f"{stage.image_resampling_order} / {stage.label_resampling}"),
    ]
    if stage.previous_stage:
        rows.append(("cascade: uses predictions of", stage.previous_stage))
    return rows


def _normalization_text(n: ChannelNormalization) -> str:
    parts = [n.scheme]
    if n.use_nonzero_mask:
        parts.append("inside the non-zero mask")
    if n.clip_low is not None or n.clip_high is not None:
        parts.append(f"clip to [{num(n.clip_low, 2)}, {num(n.clip_high, 2)}]")
    if n.mean is not None or n.std is not None:
        parts.append(f"mean {num(n.mean, 2)}, std {num(n.std, 2)}")
    return ", ".join(parts)


# ------------------------------------------------------------------ the stage as trained


def read_trained_stage(results: ResultsPaths, configuration: str) -> TrainedStage | None:
    """The stage of the first fold checkpoint that names one: finished checkpoints first, then
    latest ones, folds in order. None when no checkpoint can be read or parsed."""
    folds = results.folds(configuration)
    for kind in CHECKPOINTS:
        for fold in folds:
            path = fold.checkpoint(kind)
            if not path.is_file():
                continue
            try:
                return TrainedStage(trained_stage(peek_checkpoint(path)), fold.fold, path.name)
            except READ_ERRORS as e:  # unreadable, or plans from another version: nothing to show
                log.debug("report: no trained stage in %s: %s", path, e)
    return None


def trained_stages(results: ResultsPaths, plans: Plans) -> dict[str, TrainedStage]:
    """Configuration -> its stage as trained, for planned configurations trained differently."""
    out = {}
    for name, planned in plans.configurations.items():
        trained = read_trained_stage(results, name)
        if trained is not None and differs(planned, trained.stage):
            out[name] = trained
    return out


def differs(planned: StagePlan, trained: StagePlan) -> bool:
    """Whether training used another network, patch size or batch size than planned."""
    return ((planned.network, tuple(planned.patch_size), planned.batch_size)
            != (trained.network, tuple(trained.patch_size), trained.batch_size))


def is_lighter(planned: StagePlan, trained: StagePlan) -> bool:
    """No more stages, features, patch or batch than planned: what a time budget's variant looks like."""
    p, t = planned.network, trained.network
    return (t.num_stages <= p.num_stages
            and all(a <= b for a, b in zip(t.features_per_stage, p.features_per_stage))
            and all(a <= b for a, b in zip(trained.patch_size, planned.patch_size))
            and trained.batch_size <= planned.batch_size)


def trained_stage_html(configuration: str, planned: StagePlan, trained: TrainedStage) -> str:
    """A sentence saying why training used another stage, and the fields that differ."""
    source = f"read from {trained.source} of fold {trained.fold}"
    if is_lighter(planned, trained.stage):
        why = (f"{configuration} was trained with a lighter network than planned: the time budget "
               f"(--time-budget) chose it so that training would finish in time ({source}).")
    else:
        why = (f"{configuration} was trained with another network than this plan describes; the plan may have "
               f"been made again after training ({source}).")
    before, after = dict(stage_rows(planned)), stage_rows(trained.stage)
    rows = [(k, before.get(k, "–"), v) for k, v in after if before.get(k) != v]
    return f'<p class="trained">{esc(why)}</p>' + text_table(["", "planned", "as trained"], rows)


# ------------------------------------------------------------------ the section


def _dataset_facts(plans: Plans) -> list[tuple[str, str]]:
    labels = ", ".join(f"{k} = {seq(v) if isinstance(v, tuple) else v}" for k, v in plans.labels.items())
    return [
        ("planner", plans.planner), ("channels", ", ".join(plans.channel_names)), ("labels", labels),
        ("file ending / reader", f"{plans.file_ending} / {plans.reader}"),
        ("original median spacing", seq(plans.original_median_spacing)),
        ("original median shape", seq(plans.original_median_shape)),
        ("axis order (transpose)", seq(plans.transpose_forward)),
        ("GPU memory target", f"{plans.memory_target_gb:g} GB"),
    ]


def plan_section(plans: Plans | None, problem: str | None,
                 trained: dict[str, TrainedStage] | None = None) -> str:
    """Dataset facts, one table per configuration (with its stage as trained where that differs,
    see :func:`trained_stages`), normalization per channel, plan notes."""
    if plans is None:
        return note(problem or "No plan.")
    trained = trained or {}
    out = [text_table(["dataset", plans.dataset_name], _dataset_facts(plans)),
           f"<p>Patch sizes, spacings, shapes, kernels and strides below are in the plan's axis order: the image "
           f"axes (z, y, x) transposed by {esc(seq(plans.transpose_forward))}.</p>"]
    for name, stage in plans.configurations.items():
        out.append(f"<h3>{esc(name)}</h3>")
        out.append(text_table(["", name], stage_rows(stage)))
        if name in trained:
            out.append(trained_stage_html(name, stage, trained[name]))
    out.append("<h3>Normalization per channel</h3>")
    out.append(text_table(["channel", "normalization"],
                          [(ch, _normalization_text(n)) for ch, n in zip(plans.channel_names, plans.normalization)]))
    if plans.notes:
        out.append("<h3>Plan notes</h3>" + bullets(plans.notes))
    return "\n".join(out)
