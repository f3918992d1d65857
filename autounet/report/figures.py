"""The report's figure folder (PNG files linked relatively from ``index.html``) and the overlay plot."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np

from autounet.io.atomic import copy_file, remove_stale_temporaries
from autounet.postprocess.metrics import Class, class_mask
from autounet.report.markup import esc
from autounet.io.plots import new_figure, save_figure

FIGURES = "figures"  # the report's own subfolder, beside index.html
DPI = 90


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (case ids and configuration names may hold anything)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


@dataclass
class Figures:
    """The figure folder of one report; remembers what this run wrote so stale PNGs can be removed."""

    folder: Path
    written: set[str] = field(default_factory=set)

    def new(self, *parts: str) -> Path:
        """The path of a new figure named after ``parts`` ("training", "2d", "fold", "0")."""
        name = "_".join(safe_name(p) for p in parts) + ".png"
        self.written.add(name)
        return self.folder / name

    def discard(self, path: Path) -> None:
        """Forget a figure that was not written after all."""
        self.written.discard(path.name)

    def save(self, fig: Any, path: Path) -> None:
        save_figure(fig, path, DPI)

    def copy(self, source: Path, path: Path) -> None:
        copy_file(source, path)

    def remove_stale(self) -> None:
        """Delete PNGs of earlier runs that this run did not write, and left-over temporaries."""
        for p in self.folder.glob("*.png"):
            if p.name not in self.written:
                p.unlink(missing_ok=True)
        remove_stale_temporaries(self.folder)

    def img(self, path: Path, alt: str, caption: str) -> str:
        """A ``<figure>`` for ``path``; ``caption`` is HTML already."""
        src = esc(quote(f"{FIGURES}/{path.name}"))
        return f'<figure><img src="{src}" alt="{esc(alt)}"><figcaption>{caption}</figcaption></figure>'


def plot_overlay(figures: Figures, path: Path, image: tuple[np.ndarray, str | None], ref: np.ndarray,
                 pred: np.ndarray, classes: Sequence[tuple[Class, str]], aspect: float, title: str) -> None:
    """Three panels: image with reference (solid) and prediction (dashed) contours; reference; prediction.

    image : a displayable slice, (Y, X) gray or (Y, X, 3) RGB in [0, 1], and its colour map.
    ref, pred : label maps of shape (Y, X). classes : (class, name) pairs, one colour each.
    aspect : pixel height / width.
    """
    from matplotlib import colormaps

    shown, cmap = image
    colours = [colormaps["tab10"](i % 10) for i in range(len(classes))]
    fig = new_figure(10.5, 4.0)
    axes = fig.subplots(1, 3)
    for ax, panel in zip(axes, ("contours (solid: reference, dashed: prediction)", "reference", "prediction")):
        ax.imshow(shown, cmap=cmap, aspect=aspect, interpolation="nearest")
        ax.set_title(panel, fontsize=8)
        ax.set_axis_off()
    for (cls, _), colour in zip(classes, colours):
        for seg, style in ((ref, "solid"), (pred, "dashed")):
            mask = class_mask(seg, cls)
            if mask.any() and not mask.all():
                axes[0].contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.3,
                                linestyles=style)
    for ax, seg in ((axes[1], ref), (axes[2], pred)):
        rgba = np.zeros(seg.shape + (4,), np.float32)
        for (cls, _), colour in zip(classes, colours):
            rgba[class_mask(seg, cls)] = (*colour[:3], 0.45)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest")
    _legend(fig, [name for _, name in classes], colours)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    figures.save(fig, path)


def _legend(fig: Any, names: Sequence[str], colours: Sequence[Any]) -> None:
    """One patch per class, then the two line styles, below the panels."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=name) for name, c in zip(names, colours)]
    handles += [Line2D([], [], color="k", ls="solid", label="reference"),
                Line2D([], [], color="k", ls="dashed", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
