"""An HTML report of what autounet decided for one dataset: plan, training, cross-validation,
postprocessing and a look at some validation predictions. It is a view over every stage's
output and writes nothing any stage reads.

:func:`write_report` writes a self-contained folder (the dataset's report folder among its
results by default): ``index.html`` plus PNG figures under ``figures/``, linked relatively, so
the folder can be zipped or copied anywhere. Each section reads only files earlier stages left
on disk; a section whose inputs are missing (nothing trained yet, no cross-validation yet)
becomes a one-line note instead of an error, so the report can be written at any point of the
pipeline.

Modules: ``page`` (the document and :func:`write_report`), one per section (``plan``,
``training``, ``selection``, ``overlays``), ``figures`` (the figure folder, the overlay plot) and
``markup`` (escaping, numbers, tables, notes).
"""

from autounet.report.page import write_report

__all__ = ["write_report"]
