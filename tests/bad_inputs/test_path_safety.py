"""Hostile names through every place a name read from a file reaches a path: the command refuses,
and nothing is written anywhere (inside the workspace or outside it).

Places: case ids in dataset.json's ``dataset`` map, in ``--splits`` and in CASE.json; file
endings in CASE.json; channel names; configuration and fold names in a model zip's manifest,
in plans.json and in best_configuration.json; data identifiers in plans.json; zip members.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import pytest

from tests.bad_inputs.rows import _explicit_cases, _predictions_with_probabilities, _zip_with
from tests.bad_inputs.world import World, build, copy, run, snapshot

HOSTILE = ["../escaped", "../../../../../escaped", "/tmp/escaped_abs", "a/../../escaped", "..", ".", "",
           ".hidden", "a\\..\\escaped", "x\x00y", "~/escaped", "nul:", " spaced"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build(tmp_path_factory.mktemp("path_safety"))


def _plans(world: World, change) -> None:
    path = world.preprocessed / "plans.json"
    plans = json.loads(path.read_text())
    change(plans)
    path.write_text(json.dumps(plans))


def _rename_configuration(plans: dict, name: str) -> None:
    stage = plans["configurations"].pop("3d_fullres")
    plans["configurations"][name] = {**stage, "name": name}


def _ending(world: World, name: str) -> None:
    _predictions_with_probabilities(world)
    for meta in (world.tmp / "a").glob("*.json"):
        if meta.name != "summary.json":
            meta.write_text(json.dumps({**json.loads(meta.read_text()), "ending": name}))


PLACES = {
    # place: (command, inject(world, name))
    "dataset.json case id": ("autounet plan_and_preprocess {raw} --root {ws} -p 1",
                             lambda w, n: _explicit_cases(w, {"case_000": n})),
    "--splits case id": ("autounet plan_and_preprocess {raw} --root {ws} -p 1 --plan-only --splits {tmp}/s.json",
                         lambda w, n: (w.tmp / "s.json").write_text(json.dumps([{"train": [n], "val": ["case_000"]}]))),
    "CASE.json ending": ("autounet ensemble -i {tmp}/a {tmp}/b -o {tmp}/out", _ending),
    "channel name": ("autounet plan_and_preprocess {raw} --root {ws} -p 1 --plan-only",
                     lambda w, n: (w.raw / "dataset.json").write_text(json.dumps(
                         {**json.loads((w.raw / "dataset.json").read_text()), "channel_names": {"0": n}}))),
    "manifest configuration": ("autounet predict -m {zip} -i {raw}/imagesTs -o {tmp}/out --device cpu",
                               lambda w, n: _zip_with(w, {"autounet_model.json": json.dumps(
                                   {"configurations": [n], "folds": ["0"], "checkpoint": "final"})})),
    "manifest fold": ("autounet predict -m {zip} -i {raw}/imagesTs -o {tmp}/out --device cpu",
                      lambda w, n: _zip_with(w, {"autounet_model.json": json.dumps(
                          {"configurations": ["3d_fullres"], "folds": [n], "checkpoint": "final"})})),
    "zip member": ("autounet import_model {zip} -o {tmp}/model",
                   lambda w, n: _zip_with(w, {f"{n}/x.txt": "x", f"3d_fullres/{n}": "y"})),
    "plans.json configuration": ("autounet train {raw} 3d_fullres 1 --root {ws} --device cpu --epochs 1",
                                 lambda w, n: _plans(w, lambda p: _rename_configuration(p, n))),
    "plans.json data identifier": ("autounet train {raw} 3d_fullres 1 --root {ws} --device cpu --epochs 1",
                                   lambda w, n: _plans(w, lambda p: p["configurations"]["3d_fullres"].update(
                                       data_identifier=n))),
    "best_configuration.json configuration": (
        "autounet predict -d {raw} --root {ws} -i {raw}/imagesTs -o {tmp}/out --device cpu",
        lambda w, n: (w.results / "best_configuration.json").write_text(json.dumps({"configurations": [n]}))),
}

# Names that are harmless in a given place (the place does not build a path from them).
HARMLESS = {("channel name", n) for n in HOSTILE}  # channel names never become file names
HARMLESS |= {("zip member", n) for n in ("", ".", " spaced", ".hidden", "~/escaped", "x\x00y")}


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n) for n in HOSTILE])
@pytest.mark.parametrize("place", list(PLACES))
def test_hostile_names_write_nothing(place: str, name: str, base, tmp_path: Path, capsys, caplog):
    caplog.set_level(logging.INFO)
    world = copy(base, tmp_path / "world")
    command, inject = PLACES[place]
    inject(world, name)
    before, around = snapshot(world.tmp), snapshot(tmp_path)
    code, text = run(world, command, capsys, caplog)
    assert "Traceback" not in text, text
    if (place, name) in HARMLESS:
        assert code in (0, 2), text
    else:
        assert code == 2, f"{place} {name!r}: exit code {code}\n{text}"
        assert snapshot(world.tmp) == before, f"{place} {name!r}: files were written\n{text}"
    outside = {k for k in set(snapshot(tmp_path)) ^ set(around) if not k.startswith("world/")}
    assert not outside, f"{place} {name!r}: written outside the world: {outside}"
    assert not list(Path("/tmp").glob("escaped*")), "written to /tmp"


def test_the_zip_member_check_refuses_a_symbolic_link(base, tmp_path: Path, capsys, caplog):
    world = copy(base, tmp_path / "world")
    info = zipfile.ZipInfo("3d_fullres/link")
    info.external_attr = 0xA1FF << 16  # a symbolic link
    with zipfile.ZipFile(world.model_zip, "a") as z:
        z.writestr(info, "/etc/passwd")
    before = snapshot(world.tmp)
    code, text = run(world, "autounet import_model {zip} -o {tmp}/model", capsys, caplog)
    assert code == 2 and "symbolic link" in text and snapshot(world.tmp) == before
