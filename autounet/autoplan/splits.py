"""Cross-validation splits: seeded, written once, never silently changed.

``splits.json`` uses nnU-Net's format (a list of {"train": [...], "val": [...]}), so a split
file from nnU-Net (splits_final.json) can be used as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from autounet.errors import DatasetError
from autounet.io.atomic import read_json, write_json

log = logging.getLogger(__name__)

DEFAULT_FOLDS = 5


def make_splits(case_ids: Sequence[str], num_folds: int = DEFAULT_FOLDS, seed: int = 12345,
                strata: Mapping[str, int] | None = None) -> list[dict[str, list[str]]]:
    """A seeded k-fold split: every case is validated exactly once.

    strata : case id -> group (a class); each group's cases are dealt to the folds in turn, so
    that every fold holds each class in about the dataset's proportion (stratified folds)."""
    ids = sorted(case_ids)
    if len(ids) < 2:
        raise DatasetError(f"cross-validation needs at least 2 training cases, found {len(ids)}")
    k = min(num_folds, len(ids))
    rng = np.random.default_rng(seed)
    groups: dict[int, list[str]] = {}
    for c in ids:
        groups.setdefault(strata.get(c, 0) if strata else 0, []).append(c)
    folds: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for g in sorted(groups):
        members = groups[g]
        for i in rng.permutation(len(members)):
            folds[dealt % k].append(members[i])
            dealt += 1
    return [{"train": sorted(set(ids) - set(val)), "val": sorted(val)} for val in folds]


def strata_of(task: str, targets: Mapping[str, np.ndarray], bins: int = 5) -> dict[str, int] | None:
    """The group each case is stratified by: its class (classification), its rarest positive
    target (multi-label; -1 for none), or the quantile bin of its first target (regression)."""
    if task == "classification":
        return {c: int(v[0]) for c, v in targets.items()}
    if task == "multilabel":
        values = np.stack(list(targets.values()))
        rarity = np.argsort(values.sum(0))  # rarest target first
        return {c: next((int(t) for t in rarity if v[t] > 0), -1) for c, v in targets.items()}
    if task == "regression":
        first = np.array([v[0] for v in targets.values()])
        edges = np.quantile(first, np.linspace(0, 1, bins + 1)[1:-1])
        return {c: int(np.searchsorted(edges, v[0], side="right")) for c, v in targets.items()}
    return None


def check_splits(splits: object, case_ids: Sequence[str], path: Path) -> list[dict[str, list[str]]]:
    """Validate a split file's structure and that it names only existing cases."""
    if not isinstance(splits, list) or not splits or not all(
        isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list) for s in splits
    ):
        raise DatasetError(f"{path}: a split file must be a list of {{\"train\": [...], \"val\": [...]}}")
    known = set(case_ids)
    for i, s in enumerate(splits):
        unknown = sorted((set(s["train"]) | set(s["val"])) - known)
        if unknown:
            raise DatasetError(f"{path}: fold {i} names case(s) not in the dataset: {unknown[:5]}"
                               f"{' ...' if len(unknown) > 5 else ''}")
        overlap = sorted(set(s["train"]) & set(s["val"]))
        if overlap:
            raise DatasetError(f"{path}: fold {i} has case(s) both in train and val: {overlap[:5]}")
    missing = known - {c for s in splits for c in s["val"]}
    if missing:
        log.warning("%s: %d case(s) are in no validation fold: %s", path, len(missing), sorted(missing)[:5])
    return splits  # type: ignore[return-value]


def ensure_splits(path: Path, case_ids: Sequence[str], seed: int = 12345, user_file: Path | None = None,
                  strata: Mapping[str, int] | None = None) -> list[dict[str, list[str]]]:
    """Return the dataset's splits, writing them the first time.

    A user's split file is validated and copied to ``path``; an existing ``path`` is honoured
    as it is (and checked), never regenerated.
    """
    path = Path(path)
    if user_file is not None:
        splits = check_splits(read_json(Path(user_file)), case_ids, Path(user_file))
        if path.is_file() and read_json(path) != splits:
            log.warning("%s: replaced by the split file you gave (%s)", path, user_file)
        write_json(path, splits)
        return splits
    if path.is_file():
        return check_splits(read_json(path), case_ids, path)
    splits = make_splits(case_ids, seed=seed, strata=strata)
    write_json(path, splits)
    return splits
