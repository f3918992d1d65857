"""The report page: reads the plan and the cross-validation results, asks each section for its
HTML, and writes ``index.html`` (atomically) beside its ``figures/`` folder."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from autounet.version import __version__
from autounet.autoplan.plans import Plans, load_plans
from autounet.io.atomic import write_text
from autounet.locks import locked
from autounet.postprocess.selections import Selection, selection_from_json
from autounet.report.figures import FIGURES, Figures
from autounet.report.markup import READ_ERRORS, bullets, esc
from autounet.report.plan import TrainedStage, trained_stages
from autounet.report.spending import run_spending, spending_section
from autounet.report.selection import load_cross_validation
from autounet.report.tasks import ReportInputs, task_for
from autounet.workspace import DatasetPaths, report_lock

log = logging.getLogger(__name__)

INDEX = "index.html"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.best td { background: #e6f4ea; font-weight: 600; }
tr.accepted td { background: #eef6ff; }
.tag { background: #1e8e3e; color: white; border-radius: 3px; padding: 0 .35em; font-size: .8em; }
.warn { color: #b00020; font-weight: 600; }
.note { color: #8a6d00; background: #fff8e1; border-left: 4px solid #f0c000; padding: .4em .7em; }
.trained { background: #eef6ff; border-left: 4px solid #4a90d9; padding: .4em .7em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #444; max-width: 460px; }
.grid.wide figcaption { max-width: 950px; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; }
nav a { margin-right: 1em; }
"""


def _summary(plans: Plans | None, cv: Selection | None, trained: dict[str, TrainedStage], warnings: list[str]) -> str:
    """A few lines at the top: warnings, configurations, the stage as trained where it differs, the best entry."""
    items = []
    if plans is not None:
        items.append(f"Planned configurations: {', '.join(plans.configurations)}.")
    if trained:
        items.append(f"Trained with another network than planned (see the plan): {', '.join(trained)}.")
    if cv is not None:
        items.append(f"Best on cross-validation: {cv.headline()}.")
        if cv.predict_command:
            items.append(f"Predict with: {cv.predict_command}")
    top = "".join(f'<p class="note"><b>Warning:</b> {esc(w)}</p>' for w in warnings)
    return top + (bullets(items) if items else "")


def _page(title: str, summary: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole HTML document; sections are (anchor, heading, HTML content)."""
    nav = "".join(f'<a href="#{anchor}">{esc(heading)}</a>' for anchor, heading, _ in sections)
    body = "\n".join(f'<section id="{anchor}"><h2>{esc(heading)}</h2>\n{content}\n</section>'
                     for anchor, heading, content in sections)
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f'<p class="meta">Written {esc(stamp)} by autounet {esc(__version__)}.</p>\n{summary}\n<nav>{nav}</nav>\n'
            f"{body}\n</body>\n</html>\n")


def _read_plans(paths: DatasetPaths) -> tuple[Plans | None, str | None]:
    """The plan, or None and a note saying why not."""
    if not paths.plans.is_file():
        return None, f"No plan yet ({paths.plans} is missing); run: autounet plan_and_preprocess {paths.name}"
    try:
        return load_plans(paths.plans), None
    except READ_ERRORS as e:
        return None, f"The plan could not be read: {e}"


def _read_cross_validation(paths: DatasetPaths) -> tuple[dict | None, str | None]:
    """The cross-validation results, or None and a note saying why not."""
    cv_file = paths.trained.cross_validation
    if not cv_file.is_file():
        return None, (f"No cross-validation results yet ({cv_file} is missing); after training all folds run: "
                      f"autounet find_best_configuration {paths.name}")
    try:
        return load_cross_validation(cv_file), None
    except READ_ERRORS as e:
        return None, f"The cross-validation results could not be read: {e}"


def write_report(paths: DatasetPaths, output: Path | None = None, max_overlays: int = 4) -> Path:
    """Write ``index.html`` and its figures to ``output`` (default: the dataset's report folder
    among its results).

    Sections: the plan (with the stage as trained where a time budget changed it); training
    curves per fold; the cross-validation table with the chosen postprocessing and the predict
    command; overlays of up to ``max_overlays`` validation cases of the best configuration. A
    section whose inputs do not exist yet shows a one-line note. Returns the path of ``index.html``.
    """
    output = Path(output) if output is not None else paths.trained.report
    with locked(report_lock(output), f"the report in {output}", wait=True):  # one writer: it removes temporaries
        return _write_report(paths, output, max_overlays)


def _write_report(paths: DatasetPaths, output: Path, max_overlays: int) -> Path:
    figures = Figures(output / FIGURES)
    figures.folder.mkdir(parents=True, exist_ok=True)
    plans, plan_problem = _read_plans(paths)
    cv, cv_problem = _read_cross_validation(paths)
    trained = trained_stages(paths.trained, plans) if plans is not None else {}
    spending = run_spending(paths)
    selection = selection_from_json(cv) if cv is not None else None
    time_section = [("time", "0. Where the time went", spending_section(spending, selection))] if spending.folds else []
    inputs = ReportInputs(paths, plans, plan_problem, cv, cv_problem, trained, figures, max_overlays)
    sections = time_section + task_for(plans).sections(inputs)
    index = output / INDEX
    summary = _summary(plans, selection, trained, spending.warnings(selection))
    write_text(index, _page(f"autounet report: {paths.name}", summary, sections))
    figures.remove_stale()
    log.info("report written to %s", index)
    return index
