"""The report's cross-validation section for an instance task: each configuration and ensemble
by the panoptic quality of its objects, beside the connected components of the same masks (what
a semantic model gives), the chosen rule and the predict command."""

from __future__ import annotations

from autounet.postprocess.instances import InstanceRules
from autounet.report.markup import READ_ERRORS, esc, note, num, table

COLUMNS = (("pq", "PQ"), ("aji", "AJI"), ("object_f1", "object F1"), ("instance_dice", "per-object Dice"),
           ("pq_connected_components", "PQ, connected components"), ("foreground_mean_dice", "foreground Dice"))


def instance_cv_section(cv: dict | None, problem: str | None) -> str:
    """HTML: the entries (best first and highlighted), the chosen rule, the predict command."""
    if cv is None or cv.get("task") != "instance":
        return note(problem or "No cross-validation results.")
    entries, best = cv["entries"], cv["best"]
    order = sorted(entries, key=lambda k: -(entries[k].get("pq") or 0.0))
    rows = [[esc(name) + (' <span class="tag">best</span>' if name == best else ""),
             esc(" + ".join(entries[name].get("members", [])))] + [esc(num(entries[name].get(k))) for k, _ in COLUMNS]
            for name in order]
    out = [table(["entry", "members"] + [label for _, label in COLUMNS], rows, ["best" if n == best else "" for n in order])]
    try:
        rule = InstanceRules.from_json(entries[best]["rules"]).describe()
        out.append(f"<p>Chosen: <b>{esc(best)}</b>; {esc(cv.get('object_name', 'object'))}s from its masks: "
                   f"{esc(rule)}.</p>")
    except READ_ERRORS as e:
        out.append(note(f"The chosen rule could not be read: {e}"))
    command = cv.get("predict_command")
    out.append("<h3>Predict new cases</h3>" + (f"<pre><code>{esc(command)}</code></pre>" if command
                                                else note("No predict command in the cross-validation results.")))
    return "\n".join(out)
