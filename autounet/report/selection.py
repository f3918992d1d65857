"""Section 3, model selection: the cross-validation table, the chosen postprocessing and the
command that predicts new cases, all read from the cross-validation results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autounet.io.atomic import read_json
from autounet.postprocess.components import describe_rules
from autounet.postprocess.metrics import class_label, class_name
from autounet.report.markup import bullets, esc, note, num, table


def load_cross_validation(path: Path) -> dict:
    """Read the cross-validation results and check the keys the report needs; errors name the file."""
    cv = read_json(path)
    if not isinstance(cv, dict) or not isinstance(cv.get("entries"), dict) or not cv["entries"]:
        raise ValueError(f"{path}: no 'entries' with cross-validation results")
    for name, entry in cv["entries"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("mean_dice", {}), dict):
            raise ValueError(f"{path}: entry '{name}' is not an object with 'mean_dice'")
    if cv.get("best") not in cv["entries"]:
        raise ValueError(f"{path}: 'best' ({cv.get('best')!r}) is not one of the entries")
    return cv


def _score(entry: dict) -> float:
    v = entry.get("foreground_mean_dice")
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else -math.inf


def _entries_table(cv: dict, names: dict[str, str]) -> str:
    """Entries sorted by foreground-mean Dice, best first and highlighted; the lesion-wise F1
    (each connected component a lesion, :mod:`autounet.postprocess.lesions`) beside it."""
    entries, best = cv["entries"], cv["best"]
    classes = [str(c) for c in cv.get("classes")
               or sorted({k for e in entries.values() for k in e.get("mean_dice", {})})]
    header = (["entry", "kind", "members", "folds"] + [f"Dice {class_label(c, names)}" for c in classes]
              + ["foreground mean", "lesion F1"])
    rows, marks = [], []
    for name, e in sorted(entries.items(), key=lambda kv: -_score(kv[1])):
        tag = ' <span class="tag">best</span>' if name == best else ""
        rows.append([f"{esc(name)}{tag}", esc(e.get("kind", "")), esc(" + ".join(map(str, e.get("members", [])))),
                     esc(", ".join(map(str, e.get("folds", []))))]
                    + [esc(num(e.get("mean_dice", {}).get(c))) for c in classes]
                    + [f"<b>{esc(num(e.get('foreground_mean_dice')))}</b>", esc(num(e.get("foreground_mean_lesion_f1")))])
        marks.append("best" if name == best else "")
    return table(header, rows, marks)


def cross_validation_section(cv: dict | None, problem: str | None, names: dict[str, str]) -> str:
    """Entries sorted by foreground-mean Dice (best highlighted), postprocessing, predict command.

    names : class key -> label name (:func:`autounet.postprocess.metrics.class_names`).
    """
    if cv is None:
        return note(problem or "No cross-validation results.")
    best = cv["best"]
    chosen = cv["entries"][best]
    out = [_entries_table(cv, names),
           f"<p>Chosen: <b>{esc(best)}</b> ({esc(chosen.get('kind', 'entry'))} of "
           f"{esc(' + '.join(map(str, chosen.get('members', [best]))))}).</p>",
           _postprocessing_html(cv, chosen, names)]
    command = cv.get("predict_command")
    out.append("<h3>Predict new cases</h3>" + (f"<pre><code>{esc(command)}</code></pre>" if command
                                                else note("No predict command in the cross-validation results.")))
    return "\n".join(out)


def _postprocessing_html(cv: dict, best_entry: dict, names: dict[str, str]) -> str:
    """The chosen rules as sentences, the Dice before and after, and the rules tried."""
    post = cv.get("postprocessing")
    heading = "<h3>Postprocessing</h3>"
    if not isinstance(post, dict) or not isinstance(post.get("rules"), dict):
        return heading + note("No postprocessing was determined.")
    out = [heading, bullets(describe_rules(post["rules"], names))]
    before, after = best_entry.get("foreground_mean_dice"), cv.get("foreground_mean_dice_after_postprocessing")
    out.append(f"<p>Foreground mean Dice of the chosen entry: {esc(num(before))} before, "
               f"{esc(num(after if after is not None else before))} after postprocessing.</p>")
    steps = _steps_table(post.get("report"), names)
    if steps:
        out.append("<p>Rules tried on the cross-validation predictions (a rule is kept when it raises the Dice "
                   "and lowers no class):</p>" + steps)
    if post.get("report"):
        out.append("<details><summary>details of the postprocessing search</summary><pre>"
                   f"{esc(json.dumps(post['report'], indent=2, default=str))}</pre></details>")
    return "\n".join(out)


def _steps_table(report: Any, names: dict[str, str]) -> str:
    """The ``steps`` of a postprocessing report (rule, class, accepted, Dice before/after) as a table."""
    steps = report.get("steps") if isinstance(report, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "rule" in s for s in steps):
        return ""

    def fg(step: dict, key: str) -> str:
        value = step.get(key)
        return esc(num(value.get("foreground_mean") if isinstance(value, dict) else None))

    rows = [[esc(s["rule"]), esc(class_label(class_name(s["class"]), names) if "class" in s else "all foreground"),
             "yes" if s.get("accepted") else "no", fg(s, "before"), fg(s, "after")] for s in steps]
    return table(["rule", "applies to", "kept", "foreground Dice before", "after"], rows,
                 ["accepted" if s.get("accepted") else "" for s in steps])
