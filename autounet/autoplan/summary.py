"""A short human-readable summary of a plan."""

from __future__ import annotations

from autounet.autoplan.plans import Plans


def _fmt(seq) -> str:
    return " x ".join("-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v)) for v in seq)


def format_plan_summary(plans: Plans) -> str:
    """Configurations, patch, batch, spacing, network depth and features, normalization."""
    lines = [f"Plan for {plans.dataset_name} (memory target {plans.memory_target_gb:g} GB, "
             f"axis order {plans.transpose_forward}):"]
    header = f"  {'configuration':<20}{'patch':<18}{'batch':>6}  {'spacing':<22}{'stages':>7}  features"
    lines.append(header)
    for name, st in plans.configurations.items():
        net = st.network
        lines.append(f"  {name:<20}{_fmt(st.patch_size):<18}{st.batch_size:>6}  {_fmt(st.spacing):<22}"
                     f"{net.num_stages:>7}  {'-'.join(map(str, net.features_per_stage))}"
                     f"{'  (after ' + st.previous_stage + ')' if st.previous_stage else ''}")
    norms = ", ".join(f"{ch}: {n.scheme}{' (inside non-zero mask)' if n.use_nonzero_mask else ''}"
                      for ch, n in zip(plans.channel_names, plans.normalization))
    lines.append(f"  normalization: {norms}")
    for note in plans.notes:
        lines.append(f"  note: {note}")
    hw = plans.hardware
    if hw:
        lines.append(f"  planned on: {hw.get('device')} ({hw.get('device_name')}), {hw.get('cpu_cores')} core(s), "
                     f"{hw.get('ram_gb')} GB RAM; memory target {hw.get('memory_target_gb')} GB "
                     f"({hw.get('memory_target_source')})")
    return "\n".join(lines)
