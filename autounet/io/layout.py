"""Finding the cases of a raw dataset: CASE_XXXX.ext images and CASE.ext labels (folders: workspace.RawPaths)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.image_io import NATURAL_ENDINGS, SUPPORTED_ENDINGS, file_ending
from autounet.workspace import RawPaths, name_problem


def channel_file_pattern(endings: Sequence[str], ignore_case: bool = False) -> re.Pattern:
    """``CASE_XXXX<ending>``: groups (case id, 4-digit channel index, ending), the longest ending first."""
    alternatives = "|".join(re.escape(e) for e in sorted(endings, key=len, reverse=True))
    return re.compile(rf"^(.+)_(\d{{4}})({alternatives})$", re.IGNORECASE if ignore_case else 0)


def _channel_files(folder: Path, ending: str, problems: list[str]) -> dict[str, dict[int, Path]]:
    """Map case id -> {channel index: path} for files named CASE_XXXX<ending> in ``folder``."""
    pattern = channel_file_pattern([ending])
    found: dict[str, dict[int, Path]] = defaultdict(dict)
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if not p.name.endswith(ending):
            kind = "another image format" if file_ending(p) in SUPPORTED_ENDINGS else "not an image"
            problems.append(f"{p}: wrong file ending ({kind}); dataset.json declares file_ending '{ending}'")
            continue
        m = pattern.match(p.name)
        if m is None:
            problems.append(f"{p}: name must be CASE_XXXX{ending} (a case id, '_', a 4-digit channel index)")
            continue
        found[m.group(1)][int(m.group(2))] = p
    return found


def _duplicate_ids(cases: list[CaseFiles], where: Path, problems: list[str]) -> None:
    by_lower: dict[str, list[CaseFiles]] = defaultdict(list)
    for c in cases:
        by_lower[c.case_id.lower()].append(c)
    for group in by_lower.values():
        if len(group) > 1:
            files = ", ".join(str(c.images[0] if c.images else c.label) for c in group)
            problems.append(
                f"{where}: duplicate case ids {[c.case_id for c in group]} (they differ only in letter case and "
                f"collide on case-insensitive file systems): {files}"
            )


def discover_training_cases(spec: DatasetSpec) -> tuple[list[CaseFiles], list[str]]:
    """Find every training case and every problem with the file layout, without reading images."""
    problems: list[str] = []
    root, unnamed = spec.path, 0  # unnamed: cases whose id cannot be a file name (reported, not returned)
    if spec.cases is not None:
        cases = list(spec.cases)
        for c in cases:
            for p in c.images + ((c.label,) if c.label else ()):
                if not p.is_file():
                    problems.append(f"{p}: file listed for case '{c.case_id}' in dataset.json does not exist")
            if c.label is None and not spec.case_level:
                problems.append(f"{RawPaths(root).dataset_json}: case '{c.case_id}' has no 'label'")
    else:
        images_dir, labels_dir = RawPaths(root).images("Tr"), RawPaths(root).labels("Tr")
        for d in (images_dir,) if spec.case_level else (images_dir, labels_dir):
            if not d.is_dir():
                problems.append(f"{d}: folder is missing")
        if problems:
            return [], problems
        channels = _channel_files(images_dir, spec.file_ending, problems)
        natural = spec.file_ending.lower() in NATURAL_ENDINGS
        # a 3D file always holds one channel; a natural image may hold several (RGB)
        expected = len(spec.channel_names) if not natural else max((len(v) for v in channels.values()), default=1)
        cases = []
        for case_id, files in sorted(channels.items()):
            if name_problem(case_id, "case id") is not None:
                problems.append(f"{files[min(files)]}: {name_problem(case_id, 'case id')}; rename the case's files")
                unnamed += 1
                continue
            for idx in sorted(set(range(expected)) - set(files)):
                problems.append(
                    f"{RawPaths(root).image_file(case_id, idx, spec.file_ending)}: missing channel file "
                    f"(dataset.json declares {len(spec.channel_names)} channel(s))"
                )
            for idx in sorted(set(files) - set(range(expected))):
                problems.append(f"{files[idx]}: unexpected channel index {idx}; dataset.json declares "
                                f"{len(spec.channel_names)} channel(s)")
            label = None if spec.case_level else RawPaths(root).label_file(case_id, spec.file_ending)
            if label is not None and not label.is_file():
                problems.append(f"{label}: missing label for case '{case_id}'")
            cases.append(CaseFiles(case_id, tuple(files[i] for i in sorted(files) if i < expected), label))
        label_pattern = re.compile(re.escape(spec.file_ending) + "$")
        for p in sorted(labels_dir.iterdir()) if not spec.case_level else ():
            if p.name.startswith(".") or p.is_dir():
                continue
            if not p.name.endswith(spec.file_ending):
                problems.append(f"{p}: wrong file ending; dataset.json declares file_ending '{spec.file_ending}'")
            elif label_pattern.sub("", p.name) not in channels:
                problems.append(f"{p}: label without images in {images_dir}")
    _duplicate_ids(cases, root, problems)
    if len(cases) + unnamed != spec.num_training:
        problems.append(
            f"{RawPaths(root).dataset_json}: numTraining is {spec.num_training} but {len(cases)} training case(s) "
            "were found"
        )
    if not cases:
        problems.append(f"{root}: no training cases found")
    return cases, problems
