"""The cases to predict: new images read from files, or preprocessed training cases (validation).

Both kinds are made ready for the network(s) alike: ``prepare`` returns a :class:`Prepared`
case, its data preprocessed for each configuration that will see it, the geometry that maps
predictions back to the original image and, for a cascade validated during training, the
previous stage's labels. Cases are prepared in worker processes, so these classes hold paths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Sequence, Union

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.io.atomic import read_json
from autounet.io.geometry import Geometry
from autounet.io.image_io import SUPPORTED_ENDINGS, ImageReadError, read_channels, reader_for, write_segmentation
from autounet.inference.outputs import mask_file, prediction_done
from autounet.inference.settings import OutputOptions
from autounet.io.layout import channel_file_pattern
from autounet.preprocess.pipeline import preprocess_for_prediction
from autounet.workspace import PreprocessedCase, name_problem

_INPUT_FILE = channel_file_pattern(SUPPORTED_ENDINGS, ignore_case=True)


@dataclass(frozen=True)
class StageInput:
    """A configuration a case is prepared for: its name, plans and stage."""

    configuration: str
    plans: Plans
    stage: StagePlan


@dataclass
class Prepared:
    """A case ready for the networks: data (C, z, y, x) per configuration, and its geometry."""

    data: dict[str, np.ndarray]
    geometry: Geometry
    previous: np.ndarray | None = None  # a cascade's previous-stage labels, when they are known


def check_input(images: np.ndarray, geometry: Geometry, plans: Plans, source: Path | str) -> None:
    """Reject inputs the model cannot take: wrong channel count or dimensionality."""
    if images.shape[0] != len(plans.channel_names):
        raise ImageReadError(f"{source}: {images.shape[0]} channel(s), the model takes {len(plans.channel_names)} "
                             f"({', '.join(plans.channel_names)}); missing or extra _XXXX files?")
    flat = geometry.file_dims == 2 or geometry.shape[0] == 1
    if plans.file_dims == 3 and flat:
        raise ImageReadError(f"{source}: a 2D image, but the model was trained on 3D volumes")
    if plans.file_dims == 2 and not flat:
        raise ImageReadError(f"{source}: a 3D volume of shape {geometry.shape}, but the model was trained on 2D images")


@dataclass(frozen=True)
class ImageCase:
    """A new case: its channel files (CASE_0000.ext, ...), written to ``output`` in the same format."""

    case_id: str
    files: tuple[Path, ...]
    ending: str
    output: Path
    next_stage: ClassVar[None] = None  # only training cases feed a next stage

    @property
    def source(self) -> Path:
        """What error messages name: the first channel file."""
        return self.files[0]

    @property
    def inputs(self) -> tuple[Path, ...]:
        return self.files

    def read(self) -> tuple[np.ndarray, Geometry]:
        """The images (C, Z, Y, X) float32 and their geometry (raises ImageReadError)."""
        return read_channels(list(self.files), reader_for(self.ending))

    def prepare(self, stages: Sequence[StageInput]) -> Prepared:
        """Read, check and preprocess the images for every stage (raises ImageReadError, ValueError)."""
        return prepare_images(*self.read(), stages, self.source)

    def write_mask(self, seg: np.ndarray, geometry: Geometry, labels: dict, path: Path) -> None:
        """The mask in the input's format and geometry."""
        write_segmentation(seg, geometry, path)


@dataclass(frozen=True, eq=False)
class ArrayCase:
    """A case handed over in memory (:class:`autounet.Predictor`): images (C, Z, Y, X) float32
    and their geometry, as :meth:`ImageCase.read` would give them for the same image in a file."""

    case_id: str
    images: np.ndarray
    geometry: Geometry
    source: str = "<array>"
    next_stage: ClassVar[None] = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)

    def read(self) -> tuple[np.ndarray, Geometry]:
        return self.images, self.geometry

    def prepare(self, stages: Sequence[StageInput]) -> Prepared:
        return prepare_images(self.images, self.geometry, stages, self.source)


def prepare_images(images: np.ndarray, geometry: Geometry, stages: Sequence[StageInput], source: Path | str
                   ) -> Prepared:
    """Images (C, Z, Y, X) checked against the model and preprocessed for every stage."""
    check_input(images, geometry, stages[0].plans, source)
    data, mapped = {}, geometry
    for s in stages:
        data[s.configuration], mapped = preprocess_for_prediction(images, geometry, s.plans, s.stage)
    return Prepared(data, mapped)


@dataclass(frozen=True)
class TrainingCase:
    """A preprocessed training case, predicted in its original geometry (a fold's validation).

    previous : the previous stage's labels at this stage's resolution (a cascade's input).
    next_stage : (shape, file): also write this case's labels at the next stage's resolution.
    """

    case_id: str
    arrays: PreprocessedCase
    ending: str
    output: Path
    previous: Path | None = None
    next_stage: tuple[tuple[int, ...], Path] | None = None

    @property
    def inputs(self) -> tuple[Path, ...]:
        return (self.arrays.data,)

    def prepare(self, stages: Sequence[StageInput]) -> Prepared:
        data = np.load(self.arrays.data, mmap_mode="r")
        geometry = Geometry.from_json(read_json(self.arrays.meta)["geometry"])
        previous = np.load(self.previous) if self.previous is not None else None
        return Prepared({s.configuration: data for s in stages}, geometry, previous)

    def write_mask(self, seg: np.ndarray, geometry: Geometry, labels: dict, path: Path) -> None:
        """The mask in the input's format and geometry."""
        write_segmentation(seg, geometry, path)


Case = Union[ImageCase, ArrayCase, TrainingCase]  # and inference.dicom_cases.DicomCase
NewCase = Union[ImageCase, ArrayCase]  # a case to predict that was not trained on


def find_inputs(folder: Path, output_folder: Path) -> tuple[list[ImageCase], dict[str, str]]:
    """Group CASE_XXXX.ext files by case; files that do not fit are returned as problems."""
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    problems = {}
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        m = _INPUT_FILE.match(p.name)
        if m is None:
            problems[p.name] = f"{p}: not an input image named CASE_XXXX.ext ({', '.join(SUPPORTED_ENDINGS)})"
            continue
        groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = p
    cases = []
    for (case_id, ending), files in sorted(groups.items()):
        first = files[min(files)]
        if sorted(files) != list(range(len(files))):
            found = ", ".join(f"_{i:04d}" for i in sorted(files))
            problems[case_id] = (f"{first}: case '{case_id}' has the channel files {found}; they must be numbered "
                                 f"_0000 to _{len(files) - 1:04d}")
        elif name_problem(case_id, "case id") is not None:
            problems[case_id] = f"{first}: {name_problem(case_id, 'case id')}; rename the file"
        else:
            ordered = tuple(files[i] for i in sorted(files))
            cases.append(ImageCase(case_id, ordered, ending, mask_file(output_folder, case_id, ending)))
    return cases, problems


def check_not_input(inputs: Path, output: Path) -> None:
    """ValueError when the output is the input file or folder."""
    if Path(inputs).resolve() == Path(output).resolve():
        raise ValueError(f"{output}: the output is the input {'file' if Path(inputs).is_file() else 'folder'}; the "
                         "masks would overwrite (or later be read as) input images: choose another -o")


def find_cases(inputs: Path, output: Path) -> tuple[list[ImageCase], dict[str, str]]:
    """The cases of an input folder (masks into the folder ``output``), or the one case of an
    input file (its mask to the file ``output``, or into the folder ``output``), and the files
    that are no case (problems)."""
    inputs, output = Path(inputs), Path(output)
    check_not_input(inputs, output)
    if inputs.is_file():
        cases, _ = find_inputs(inputs.parent, output.parent if output.suffix else output)
        cases = [c for c in cases if inputs in c.files]
        if output.suffix and cases:
            cases = [replace(cases[0], output=output)]
        problems: dict[str, str] = {}
    elif inputs.is_dir():
        cases, problems = find_inputs(inputs, output)
    else:
        raise FileNotFoundError(f"{inputs}: no such file or folder")
    if not cases:
        raise ValueError(f"{inputs}: no input images named CASE_XXXX.ext found")
    return cases, problems


def share(keys: Sequence[str], part: tuple[int, int] | None) -> set[str]:
    """The keys (case ids) part K of N predicts: every N-th in sorted order from the K-th, so the
    N parts cover each case exactly once, whichever machine runs which part."""
    ordered = sorted(set(keys))
    return set(ordered if part is None else ordered[part[0]::part[1]])


def select_cases(cases: Sequence[ImageCase], problems: dict[str, str], options: OutputOptions,
                 with_probabilities: bool = False) -> tuple[list[ImageCase], dict[str, str], list[str]]:
    """The cases to predict now, the problems to report and the cases skipped as complete.

    Only ``options.part``'s share of the cases (and of the problems) is kept. A case whose output
    exists is refused (a problem naming the file: ``-o labelsTs`` must not replace the ground
    truth), unless ``options.overwrite`` replaces it or ``options.resume`` keeps it when it is
    complete (:func:`~autounet.inference.outputs.prediction_done`; an incomplete one is predicted
    again)."""
    mine = share([c.case_id for c in cases] + list(problems), options.part)
    cases = [c for c in cases if c.case_id in mine]
    problems = {k: v for k, v in problems.items() if k in mine}
    done = [c for c in cases if options.resume and prediction_done(c.output, c.ending, with_probabilities)]
    existing = [] if options.overwrite else [c for c in cases if c not in done and c.output.exists()
                                             and not options.resume]
    if existing and len(existing) == len(cases):
        raise ValueError(f"{options.output}: the output of every case exists already ({len(existing)}, e.g. "
                         f"{existing[0].output.name}); predict replaces none: pass --continue to keep them and "
                         "predict the others, --overwrite to replace them, or choose another -o")
    problems.update({c.case_id: f"{c.output}: exists already; not replaced (pass --overwrite to replace it, or "
                                "--continue to keep complete outputs)" for c in existing})
    return [c for c in cases if c not in existing and c not in done], problems, [c.case_id for c in done]
