"""Where raw datasets, preprocessed data and results live: the one owner of the on-disk layout.

One root folder: ``--root``, else the ``AUTOUNET_ROOT`` environment variable, else the current
directory. Inside it::

    raw/DatasetXXX_Name/            imagesTr/ labelsTr/ imagesTs/ labelsTs/ dataset.json
    preprocessed/DatasetXXX_Name/   fingerprint.json plans.json splits.json gt_segmentations/
                                    <data_identifier>/CASE_data.npy CASE_seg.npy CASE_locs.npz CASE.json
    results/DatasetXXX_Name/        <configuration>/fold_<k>/ checkpoint_{latest,best,final}.pt
                                        training_log.txt progress.png spending.json validation/
                                    <configuration>/predicted_next_stage/CASE.npy   (cascade input)
                                    cross_validation/<entry>/  cross_validation.json
                                    best_configuration.json postprocessing.json report/

Without ``--root`` and ``AUTOUNET_ROOT``, nnU-Net users' variables are read instead: raw datasets
are looked up in ``$nnUNet_raw``, and a dataset's outputs go to ``$nnUNet_preprocessed/NAME/autounet``
and ``$nnUNet_results/NAME/autounet`` (the subfolder keeps them apart from nnU-Net's own files in
the same dataset folder), or to ``preprocessed/NAME`` and ``results/NAME`` in the current directory
where those two are not set (:func:`workspace_roots`).

An exported model unpacks to the same layout as a results folder (:class:`ResultsPaths`), so
prediction reads both alike. Every other module asks these classes for a workspace path and
never joins a layout name onto a path itself (``tests/test_structure.py`` checks). Folders a user
names are not the workspace's: a prediction folder's files belong to
:mod:`autounet.inference.outputs`, evaluate's to :mod:`autounet.postprocess.evaluate`, the
report's own files to :mod:`autounet.report`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from autounet.errors import WorkspaceError

ROOT_ENV = "AUTOUNET_ROOT"
# nnU-Net's three folder variables, by the workspace folder each stands for; read only where neither
# --root nor AUTOUNET_ROOT is given, and only when nnUNet_raw is set.
NNUNET_ENV = {"raw": "nnUNet_raw", "preprocessed": "nnUNet_preprocessed", "results": "nnUNet_results"}
NNUNET_SUBFOLDER = "autounet"
_OUTPUTS = ("preprocessed", "results")
_WHERE_HINT = (f"raw datasets are looked up in --root's raw/, else ${ROOT_ENV}/raw, else ${NNUNET_ENV['raw']}, "
               "else ./raw")
# The one rule for names read from files (case ids, configuration and fold names, file endings)
# before they become part of a path: no separator, no "..", nothing hidden, nothing a shell or
# another file system would read differently.
NAME_RULE = "letters, digits, '_', '-', '+' and '.', not starting with '.', at most 200 characters"
_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,199}")
_ENDING = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,2}")
CHECKPOINT_FILES = {"final": "checkpoint_final.pt", "best": "checkpoint_best.pt", "latest": "checkpoint_latest.pt"}
FOLD_PREFIX = "fold_"


def name_problem(name: object, what: str = "name") -> str | None:
    """Why ``name`` cannot become part of a file name (see NAME_RULE), or None when it can."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return f"{what} {name!r} cannot be used in a file name (allowed: {NAME_RULE})"


def checked_name(name: object, what: str = "name") -> str:
    """``name`` if it may become part of a file name; WorkspaceError otherwise."""
    problem = name_problem(name, what)
    if problem is not None:
        raise WorkspaceError(problem)
    return name  # type: ignore[return-value]


def checked_ending(ending: object) -> str:
    """A file ending (".nii.gz", ".png") that may end a file name; WorkspaceError otherwise."""
    if isinstance(ending, str) and _ENDING.fullmatch(ending):
        return ending
    raise WorkspaceError(f"file ending {ending!r} cannot be used in a file name (expected e.g. .nii.gz or .png)")


def default_root() -> Path:
    """``$AUTOUNET_ROOT`` if set, else the current directory."""
    return Path(os.environ.get(ROOT_ENV) or ".").resolve()


class _Under:
    """A read-only attribute: the path ``parts`` below the instance's folder attribute ``base``."""

    def __init__(self, base: str, *parts: str, doc: str = ""):
        self.base, self.parts, self.__doc__ = base, parts, doc or "/".join(parts)

    def __get__(self, obj: Any, owner: type | None = None) -> Path:
        if obj is None:
            return self  # type: ignore[return-value]
        return Path(getattr(obj, self.base)).joinpath(*self.parts)


@dataclass(frozen=True)
class RawPaths:
    """A raw dataset folder in nnU-Net v2's layout."""

    root: Path

    dataset_json = _Under("root", "dataset.json")

    def images(self, split: str) -> Path:
        """``imagesTr`` (split "Tr") or ``imagesTs`` ("Ts")."""
        return self.root / f"images{_split(split)}"

    def labels(self, split: str) -> Path:
        """``labelsTr`` (split "Tr") or ``labelsTs`` ("Ts")."""
        return self.root / f"labels{_split(split)}"

    def targets(self, split: str) -> Path:
        """``labelsTr.csv`` (split "Tr") or ``labelsTs.csv`` ("Ts"): one row of targets per case, for
        case-level tasks (classification, multi-label, regression)."""
        return self.root / f"labels{_split(split)}.csv"

    def image_file(self, case_id: str, channel: int, ending: str, split: str = "Tr") -> Path:
        """``CASE_XXXX<ending>``: one channel of a case."""
        return self.images(split) / f"{checked_name(case_id, 'case id')}_{channel:04d}{checked_ending(ending)}"

    def label_file(self, case_id: str, ending: str, split: str = "Tr") -> Path:
        """``CASE<ending>``: a case's label map."""
        return self.labels(split) / f"{checked_name(case_id, 'case id')}{checked_ending(ending)}"


def _split(split: str) -> str:
    if split not in ("Tr", "Ts"):
        raise ValueError(f"split must be 'Tr' or 'Ts', got {split!r}")
    return split


class _CaseFile:
    """A read-only attribute: the file ``<case_id><suffix>`` in the instance's data folder."""

    def __init__(self, suffix: str, doc: str):
        self.suffix, self.__doc__ = suffix, doc

    def __get__(self, obj: Any, owner: type | None = None) -> Path:
        if obj is None:
            return self  # type: ignore[return-value]
        return obj.folder / f"{obj.case_id}{self.suffix}"


@dataclass(frozen=True)
class PreprocessedCase:
    """The files of one preprocessed case inside a data folder; ``meta`` is written last."""

    folder: Path
    case_id: str

    def __post_init__(self) -> None:
        checked_name(self.case_id, "case id")

    data = _CaseFile("_data.npy", "float32 (C, Z, Y, X), memory-mappable.")
    seg = _CaseFile("_seg.npy", "int8/int16 (Z, Y, X).")
    locations = _CaseFile("_locs.npz", "Voxel coordinates per foreground label (and background, where an ignore label marks sparse annotations), for sampling.")
    meta = _CaseFile(".json", "Geometry and metadata; its presence marks the case finished.")

    @property
    def files(self) -> tuple[Path, Path, Path, Path]:
        return self.data, self.seg, self.locations, self.meta


def report_lock(folder: Path) -> Path:
    """Held while a process writes the report in ``folder`` (:mod:`autounet.locks`)."""
    return Path(folder) / ".report.lock"


def case_predictions_file(folder: Path, mirrored: bool = True) -> Path:
    """A case-level prediction CSV in ``folder`` (a fold's validation folder, or a prediction
    output folder): with test-time mirroring (``predictions.csv``) or without."""
    return Path(folder) / ("predictions.csv" if mirrored else "predictions_no_mirroring.csv")


def preprocessed_case_ids(folder: Path) -> list[str]:
    """Case ids with finished preprocessing (a metadata file) in a data folder."""
    return sorted(p.stem for p in Path(folder).glob("*.json") if not p.name.startswith("."))


@dataclass(frozen=True)
class FoldPaths:
    """One trained fold: ``<configuration>/fold_<k>/``."""

    root: Path

    training_log = _Under("root", "training_log.txt")
    progress_plot = _Under("root", "progress.png")
    spending = _Under("root", "spending.json",
                      doc="Where the fold's time went: training, validation and overhead, iterations against the "
                          "learning minimum.")
    validation = _Under("root", "validation", doc="The fold's validation cases, predicted in their original geometry.")
    validation_summary = _Under("root", "validation", "summary.json", doc="Dice per validation case and class.")
    lock = _Under("root", ".fold.lock", doc="Held while a process trains the fold (:mod:`autounet.locks`).")
    inputs = _Under("root", "inputs.json", doc="What the fold trains on: digests of its plan, split and cases "
                                               "(:mod:`autounet.io.provenance`).")

    @property
    def fold(self) -> str:
        """The fold's name: "0".."4" or "all"."""
        return self.root.name.removeprefix(FOLD_PREFIX)

    @property
    def configuration(self) -> str:
        return self.root.parent.name

    def checkpoint(self, kind: str) -> Path:
        """``kind``: "final", "best" or "latest"."""
        if kind not in CHECKPOINT_FILES:
            raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINT_FILES)}, got {kind!r}")
        return self.root / CHECKPOINT_FILES[kind]


def _fold_order(fold: FoldPaths) -> tuple[int, int | str]:
    return (0, int(fold.fold)) if fold.fold.isdigit() else (1, fold.fold)


@dataclass(frozen=True)
class ResultsPaths:
    """A folder of trained configurations: a dataset's results, or an unpacked exported model."""

    root: Path

    cross_validation = _Under("root", "cross_validation.json", doc="Every entry's cross-validation scores.")
    best_configuration = _Under("root", "best_configuration.json", doc="The chosen configuration or ensemble.")
    postprocessing = _Under("root", "postprocessing.json", doc="The postprocessing rules chosen on the CV.")
    dataset_json = _Under("root", "dataset.json", doc="The dataset.json an exported model carries.")
    model_manifest = _Under("root", "autounet_model.json",
                            doc="What an exported model holds (configurations, folds, checkpoint).")
    report = _Under("root", "report", doc="The HTML report's default folder.")
    run_record = _Under("root", "run.json", doc="``autounet run``'s budget accounting and chosen configurations.")
    run_lock = _Under("root", ".run.lock", doc="Held while ``autounet run`` works on the dataset.")

    def configuration(self, configuration: str) -> Path:
        return self.root / checked_name(configuration, "configuration")

    def fold(self, configuration: str, fold: int | str) -> FoldPaths:
        return FoldPaths(self.configuration(configuration) / f"{FOLD_PREFIX}{checked_name(str(fold), 'fold')}")

    def stale_fold(self, configuration: str, fold: int | str) -> Path:
        """Where ``autounet run`` moves a fold trained on data that has changed since, before it
        trains the fold again (one such copy per fold: the last one)."""
        return self.configuration(configuration) / f"stale_{FOLD_PREFIX}{checked_name(str(fold), 'fold')}"

    def folds(self, configuration: str) -> list[FoldPaths]:
        """Every fold folder of a configuration, numbered folds first, in order."""
        found = [FoldPaths(p) for p in self.configuration(configuration).glob(f"{FOLD_PREFIX}*") if p.is_dir()]
        return sorted(found, key=_fold_order)

    def trained_folds(self, configuration: str, checkpoint: str = "final") -> list[str]:
        """Folds of a configuration that have the checkpoint."""
        return [f.fold for f in self.folds(configuration) if f.checkpoint(checkpoint).is_file()]

    def configurations_with_folds(self) -> list[str]:
        """Configuration folders holding at least one fold folder, sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and self.folds(d.name))

    def next_stage(self, configuration: str) -> Path:
        """A cascade's input: this configuration's cross-validation predictions at the next stage's resolution."""
        return self.configuration(configuration) / "predicted_next_stage"

    def next_stage_file(self, configuration: str, case_id: str) -> Path:
        return self.next_stage(configuration) / f"{checked_name(case_id, 'case id')}.npy"

    def cross_validation_predictions(self, entry: str) -> Path:
        """One configuration's or ensemble's cross-validation predictions, gathered in one folder."""
        return self.root / "cross_validation" / checked_name(entry, "cross-validation entry")


@dataclass(frozen=True)
class DatasetPaths:
    """The folders of one dataset inside a workspace."""

    name: str
    raw: Path
    preprocessed: Path
    results: Path

    fingerprint = _Under("preprocessed", "fingerprint.json")
    plans = _Under("preprocessed", "plans.json")
    splits = _Under("preprocessed", "splits.json")
    references = _Under("preprocessed", "gt_segmentations",
                        doc="A copy of every training label map: what later stages evaluate against.")
    preprocessing_lock = _Under("preprocessed", ".preprocess.lock",
                                doc="Held while a process plans or preprocesses the dataset.")

    @property
    def raw_files(self) -> RawPaths:
        return RawPaths(self.raw)

    @property
    def trained(self) -> ResultsPaths:
        return ResultsPaths(self.results)

    def data_folder(self, data_identifier: str) -> Path:
        return self.preprocessed / checked_name(data_identifier, "data identifier")

    def reference(self, case_id: str, file_ending: str) -> Path:
        return self.references / f"{checked_name(case_id, 'case id')}{checked_ending(file_ending)}"


@dataclass(frozen=True)
class WorkspaceRoots:
    """Where raw datasets are looked up (``raw``) and where a dataset's outputs go.

    The outputs of a dataset NAME go to ``preprocessed/NAME`` and ``results/NAME``; below an output
    folder that one of nnU-Net's variables set (``nnunet_outputs`` names it: "preprocessed",
    "results"), to ``.../NAME/autounet``, apart from nnU-Net's own files. ``source`` says what
    chose the folders: "--root", "$AUTOUNET_ROOT", "$nnUNet_raw" or "the current directory".
    """

    raw: Path
    preprocessed: Path
    results: Path
    source: str
    nnunet_outputs: tuple[str, ...] = ()

    def dataset(self, name: str) -> DatasetPaths:
        """The folders of the dataset ``name`` (e.g. Dataset004_Hippocampus)."""
        checked_name(name, "dataset name")
        return DatasetPaths(name=name, raw=self.raw / name, preprocessed=self._output("preprocessed", name),
                            results=self._output("results", name))

    def _output(self, kind: str, name: str) -> Path:
        below = (NNUNET_SUBFOLDER,) if kind in self.nnunet_outputs else ()
        return getattr(self, kind).joinpath(name, *below)


def workspace_roots(root: Path | None = None, environ: Mapping[str, str] | None = None) -> WorkspaceRoots:
    """The folders of the workspace: ``root`` (``--root``), else ``$AUTOUNET_ROOT``, else nnU-Net's
    variables where ``nnUNet_raw`` is set, else the current directory. ``environ``: default os.environ."""
    env = os.environ if environ is None else environ
    if root is not None or env.get(ROOT_ENV):
        base = Path(root if root is not None else env[ROOT_ENV]).resolve()
        return _single_root(base, "--root" if root is not None else f"${ROOT_ENV}")
    here = _single_root(Path(".").resolve(), "the current directory")
    if not env.get(NNUNET_ENV["raw"]):
        return here
    outputs = tuple(kind for kind in _OUTPUTS if env.get(NNUNET_ENV[kind]))
    folder = {kind: Path(env[NNUNET_ENV[kind]]).resolve() if kind in outputs else getattr(here, kind)
              for kind in _OUTPUTS}
    return WorkspaceRoots(raw=Path(env[NNUNET_ENV["raw"]]).resolve(), **folder,
                          source=f"${NNUNET_ENV['raw']}", nnunet_outputs=outputs)


def _single_root(base: Path, source: str) -> WorkspaceRoots:
    return WorkspaceRoots(raw=base / "raw", preprocessed=base / "preprocessed", results=base / "results",
                          source=source)


def describe_roots(roots: WorkspaceRoots) -> str:
    """One line for people: where datasets are read and where their outputs go (NAME: the dataset)."""
    example = roots.dataset("NAME")
    if roots.source != f"${NNUNET_ENV['raw']}":
        return (f"workspace {roots.raw.parent} ({roots.source}): raw datasets in {roots.raw}, outputs in "
                f"{example.preprocessed} and {example.results}")
    outputs = [f"{kind} {getattr(example, kind)} (${NNUNET_ENV[kind]}"
               f"{'' if kind in roots.nnunet_outputs else ' not set: the current directory'})" for kind in _OUTPUTS]
    return f"nnU-Net folders: raw ${NNUNET_ENV['raw']}={roots.raw}, " + ", ".join(outputs)


def dataset_paths(root: Path | None, name: str) -> DatasetPaths:
    """The folders of the dataset ``name`` (e.g. Dataset900_Example) in the workspace at ``root``
    (None: the workspace of :func:`workspace_roots`)."""
    return workspace_roots(root).dataset(name)


def resolve_dataset(dataset: str | int | Path, root: Path | None = None) -> DatasetPaths:
    """Find a dataset by id (``4``), name (``Dataset004_Hippocampus``) or raw folder path; its
    outputs go where :func:`workspace_roots` says (``root`` None: from the environment)."""
    roots = workspace_roots(root)
    text = str(dataset)
    candidate = Path(text).expanduser()
    if RawPaths(candidate).dataset_json.is_file() or (os.sep in text and candidate.is_dir()):
        raw = candidate.resolve()
    else:
        raw = _raw_folder(text, roots)
    return dataclasses.replace(roots.dataset(raw.name), raw=raw)


def _raw_folder(text: str, roots: WorkspaceRoots) -> Path:
    """The raw folder of a dataset id or name in ``roots.raw``; WorkspaceError naming where it looked."""
    where = f"{roots.raw} ({roots.source})"
    if re.fullmatch(r"\d+", text):
        matches = sorted(roots.raw.glob(f"Dataset{int(text):03d}_*")) if roots.raw.is_dir() else []
        if not matches:
            raise WorkspaceError(f"no dataset with id {text} in {where} (expected a folder Dataset{int(text):03d}_NAME; "
                                 f"{_WHERE_HINT})")
        if len(matches) > 1:
            raise WorkspaceError(f"dataset id {text} is ambiguous in {where}: {[m.name for m in matches]}")
        return matches[0]
    if (roots.raw / text).is_dir():
        return roots.raw / text
    raise WorkspaceError(f"dataset '{text}' not found: not a folder with a dataset.json, and no {text} in {where} "
                         f"({_WHERE_HINT})")

