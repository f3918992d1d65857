"""Small HTML pieces shared by the report's sections (escaping, numbers, tables, notes), and what
the sections read other stages' files with.

Every function returns HTML text. Values from files are escaped here (``esc``) or by the caller
before they reach a table cell; a section never puts raw file content into the page.
"""

from __future__ import annotations

import html
import math
import pickle
from typing import Any, Sequence

# Errors a section may meet in files written by other stages (or by hand); they become a note.
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, RuntimeError,
               pickle.UnpicklingError)
CHECKPOINTS = ("final", "latest")  # the checkpoints a finished or running fold is read from, preferred first


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    """A one-line note (what is missing or could not be read) in place of a section's content."""
    return f'<p class="note">{esc(text)}</p>'


def num(value: Any, digits: int = 4) -> str:
    """A Dice-like number, or an en dash for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def seq(values: Any) -> str:
    """(1.0, 0.5, 0.5) -> "1 × 0.5 × 0.5"; None entries (2d spacing) -> "-"."""
    if values is None:
        return "–"
    if isinstance(values, (list, tuple)):
        return " × ".join("-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in values)
    return str(values)


def bullets(items: Sequence[str]) -> str:
    """An unordered list of plain-text items (escaped here)."""
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] | None = None) -> str:
    """Cells are HTML already (escape them before); header strings are escaped here.

    row_classes : a CSS class per row ("" for none), e.g. to highlight the best entry.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        attr = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table of plain-text cells (every cell escaped here)."""
    return table(header, [[esc(c) for c in row] for row in rows])
