"""nnU-Net's flag spellings: aliases parse to the same namespace as autounet's own, flags without an
equivalent are usage errors that say what to do instead, and every subcommand's --help is complete
and spelled consistently."""

from __future__ import annotations

import argparse
import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest

from autounet import api
from autounet.cli import _dataset_argument, build_parser, main
from autounet.cli.nnunet import INSTEAD, NoEquivalent
from autounet.training.budget import DURATION_FORMS


def _subparsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    parser = parser or build_parser()
    return parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse keeps them nowhere public)


def _parsed(command_line: str) -> dict:
    """The namespace main() hands to a handler, as a dict: -d merged into DATASET; the handler and the
    raw -d value (an intermediate) left out."""
    parser = build_parser()
    args = parser.parse_args(shlex.split(command_line))
    _dataset_argument(parser, args)
    values = vars(args)
    del values["func"]
    values.pop("dataset_option", None)
    return values


def _usage_error(argv: list[str], capsys) -> str:
    """main(argv) must stop with argparse's usage error (exit code 2); its stderr."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


SAME = [
    ("train 4 3d_fullres 0 --c --npz -device cpu",
     "train 4 3d_fullres 0 --continue --save-probabilities --device cpu"),
    ("predict -i in -o out -d 4 -c 3d_fullres -f 0 1 2 3 4 -chk checkpoint_best.pth --disable_tta -step_size 0.5 "
     "--save_probabilities",
     "predict -i in -o out -d 4 -c 3d_fullres -f 0 1 2 3 4 --checkpoint best --no-tta --step 0.5 --save-probabilities"),
    ("find_best_configuration 4 -c 2d 3d_fullres", "find_best_configuration -d 4 --configurations 2d 3d_fullres"),
    ("find_best_configuration 4 --disable_ensembling", "find_best_configuration 4 --no-ensembles"),
    ("find_best_configuration 4 -np 2", "find_best_configuration 4 -p 2"),
    ("plan_and_preprocess 4 -gpu_memory_target 8 --no_pp --clean",
     "plan_and_preprocess 4 --gpu-memory-gb 8 --plan-only --force"),
    ("predict -i a -o b -d 4 -npp 3", "predict -i a -o b -d 4 -p 3"),
    ("predict -i a -o b -d 4 -chk checkpoint_final.pth", "predict -i a -o b -d 4 --checkpoint final"),
    ("export_model 4 -o m.zip -chk checkpoint_best.pth", "export_model 4 -o m.zip --checkpoint best"),
    ("convert_msd Task04_Hippocampus -overwrite_id 4 -np 2", "convert_msd Task04_Hippocampus --dataset-id 4 -p 2"),
    ("evaluate -r ref -pred masks", "evaluate -r ref --prediction masks"),
    ("predict -i a -o b -d 4 -part_id 1 -num_parts 3 --continue_prediction",
     "predict -i a -o b -d 4 --part 1 --parts 3 --continue"),
]


@pytest.mark.parametrize("nnunet, autounet", SAME, ids=[a.split()[0] + ":" + a.split(" ", 1)[1] for a, _ in SAME])
def test_nnunet_spelling_means_the_same(nnunet: str, autounet: str):
    assert _parsed(nnunet) == _parsed(autounet)


def test_plan_and_preprocess_in_nnunet_spelling():
    nnunet = _parsed("plan_and_preprocess -d 4 -c 3d_fullres -np 8 --verify_dataset_integrity")
    ours = _parsed("plan_and_preprocess 4 -c 3d_fullres -p 8")
    assert nnunet.pop("verify_dataset_integrity") is True  # accepted, a no-op: autounet always verifies
    ours.pop("verify_dataset_integrity")
    assert nnunet == ours
    assert (ours["dataset"], ours["datasets"], ours["processes"], ours["configurations"]) == ("4", ["4"], 8,
                                                                                             ["3d_fullres"])


def test_aliases_set_the_values_they_stand_for():
    train = _parsed("train 4 3d_fullres 0 --c --npz -device cpu")
    assert (train["resume"], train["save_probabilities"], train["device"], train["fold"]) == (True, True, "cpu", [0])
    predict = _parsed("predict -i in -o out -d 4 -chk checkpoint_best.pth --disable_tta -step_size 0.25 -npp 3")
    assert (predict["checkpoint"], predict["mirror"], predict["step"], predict["processes"]) == ("best", False, 0.25, 3)
    plan = _parsed("plan_and_preprocess 4 -gpu_memory_target 8 --no_pp --clean")
    assert (plan["gpu_memory_gb"], plan["plan_only"], plan["force"]) == (8.0, True, True)
    assert _parsed("find_best_configuration 4 --disable_ensembling -np 2")["no_ensembles"] is True


def test_several_datasets_only_for_plan_and_preprocess(capsys):
    assert _parsed("plan_and_preprocess -d 4 5")["datasets"] == ["4", "5"]
    # elsewhere -d takes one value: a second one is a second dataset
    assert "give the dataset once" in _usage_error(["verify_dataset", "-d", "4", "5"], capsys)
    assert "give the dataset once" in _usage_error(["train", "4", "2d", "0", "-d", "5"], capsys)


# nnU-Net flags with no equivalent: a usage error that says what autounet does instead.
PLANS_NAME = "autounet keeps one plan per dataset"  # processes_count's answer to nnU-Net's -p nnUNetPlans
NO_EQUIVALENT = [
    ("train 4 2d 0 -tr nnUNetTrainer", INSTEAD["-tr"]),
    ("train 4 2d 0 -p nnUNetPlans", PLANS_NAME),
    ("train 4 2d 0 -num_gpus 2", INSTEAD["-num_gpus"]),
    ("predict -i a -o b -d 4 -nps 2", INSTEAD["-nps"]),
    ("plan_and_preprocess 4 -pl ExperimentPlanner", INSTEAD["-pl"]),
    ("find_best_configuration 4 -p nnUNetPlans", PLANS_NAME),
    ("predict -i a -o b -d 4 -p nnUNetPlans", PLANS_NAME),
]


@pytest.mark.parametrize("command_line, instead", NO_EQUIVALENT)
def test_flag_without_equivalent_says_what_to_do_instead(command_line: str, instead: str, capsys):
    err = _usage_error(shlex.split(command_line), capsys)
    assert instead in err
    assert "Traceback" not in err


# The smallest valid command line of each subcommand that hides nnU-Net flags.
MINIMAL = {"train": "train 4 2d 0", "predict": "predict -i a -o b -d 4", "plan_and_preprocess": "plan_and_preprocess 4",
           "find_best_configuration": "find_best_configuration 4"}


def _hidden_nnunet_flags() -> list:
    params = []
    for command, sub in _subparsers().items():
        for action in sub._actions:  # noqa: SLF001
            if isinstance(action, NoEquivalent):
                flag = action.option_strings[0]
                params.append(pytest.param(command, flag, id=f"{command}{flag}"))
    return params


@pytest.mark.parametrize("command, flag", _hidden_nnunet_flags())
def test_every_hidden_nnunet_flag_is_answered(command: str, flag: str, capsys):
    """Each flag accepted only to be explained: with or without a value, exit code 2 and its answer."""
    assert command in MINIMAL, f"add a minimal command line for {command}"
    for value in ([], ["x"]):
        err = _usage_error([*shlex.split(MINIMAL[command]), flag, *value], capsys)
        assert f"argument {flag}: is nnU-Net's" in err and INSTEAD[flag] in err


def test_fold_must_be_a_number_or_all(capsys):
    err = _usage_error(["train", "900", "2d", "x"], capsys)
    assert "0-4" in err and "all" in err
    assert _parsed("train 900 2d all")["fold"] == ["all"]
    assert _parsed("train 900 2d 0 1 2")["fold"] == [0, 1, 2]


def test_unknown_checkpoint_name_is_a_usage_error(capsys):
    err = _usage_error(["predict", "-i", "a", "-o", "b", "-d", "4", "-chk", "model_latest.pt"], capsys)
    assert "final or best" in err


@pytest.mark.parametrize("command_line", ["run 4 --time-budget 30min", "train 4 2d 0 --time-budget 30min",
                                          "demo --time-budget 30min"])
def test_time_budget_is_accepted(command_line: str):
    assert _parsed(command_line)["time_budget"] == "30min"
    assert api.parse_duration("30min") == 1800


def test_parse_duration_forms():
    assert [api.parse_duration(t) for t in ("30m", "8h", "1h30m", "90s")] == [1800, 8 * 3600, 5400, 90]
    for text in ("45", "45 parsecs", "0m"):
        with pytest.raises(ValueError, match="time budget"):
            api.parse_duration(text)
    with pytest.raises(ValueError, match="needs a unit") as refused:
        api.parse_duration("45")
    assert DURATION_FORMS in str(refused.value) and "30m, 30min" in str(refused.value)


@pytest.mark.parametrize("command", [["demo"], ["run", "4"], ["train", "4", "2d", "0"]])
def test_bare_number_budget_fails_before_any_work(command: list[str], tmp_path: Path, capsys):
    """The budget is read first: a bare number stops the command (exit code 2) with nothing written."""
    assert main([*command, "--time-budget", "45", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "30m, 30min" in err and "needs a unit" in err
    assert list(tmp_path.iterdir()) == []


# --help: examples, and a help text for every argument.
@pytest.mark.parametrize("command", list(_subparsers()))
def test_help_has_examples_and_explains_every_argument(command: str, capsys):
    sub = _subparsers()[command]
    assert any(line.startswith("  autounet ") for line in (sub.epilog or "").splitlines())
    for action in sub._actions:  # noqa: SLF001
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), f"{command} {action.option_strings or action.dest}: no help"
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  autounet " in out
    hidden = [a.option_strings[0] for a in sub._actions if isinstance(a, NoEquivalent)]  # noqa: SLF001
    for flag in hidden:  # nnU-Net's unanswerable flags stay out of the help
        assert not re.search(rf"(?<![\w-]){flag}(?![\w-])", out), flag


@pytest.mark.parametrize("command", list(_subparsers()))
def test_help_examples_parse(command: str):
    """Each example under --help is a valid command line (up to argument parsing)."""
    examples = [line for line in _subparsers()[command].epilog.splitlines() if line.startswith("  autounet ")]
    for line in examples:
        argv = shlex.split(line, comments=True)[1:]
        assert _parsed(shlex.join(argv))["command"] == command


def test_long_options_have_the_same_short_flags_everywhere():
    """--output is -o wherever it appears, --processes -p, and so on; and a visible short flag
    (-o, -p, -c, ...) always stands for the same long option."""
    shorts_of: dict[str, dict[str, frozenset]] = defaultdict(dict)
    longs_of: dict[str, dict[str, frozenset]] = defaultdict(dict)
    for command, sub in _subparsers().items():
        for action in sub._actions:  # noqa: SLF001
            if action.help == argparse.SUPPRESS:
                continue
            longs = frozenset(o for o in action.option_strings if o.startswith("--"))
            shorts = frozenset(o for o in action.option_strings if len(o) == 2 and o[0] == "-" and o[1] != "-")
            for option in longs:
                shorts_of[option][command] = shorts
            for option in shorts:
                longs_of[option][command] = longs
    for option in ("--output", "--processes", "--configurations", "--folds", "--input", "--dataset", "--device",
                   "--checkpoint"):
        assert len(shorts_of[option]) >= 2, option
    inconsistent = {o: by for o, by in {**shorts_of, **longs_of}.items() if len(set(by.values())) > 1}
    assert not inconsistent
    assert shorts_of["--output"]["predict"] == {"-o"} and shorts_of["--processes"]["predict"] == {"-p"}


def test_run_is_listed_first(capsys):
    assert next(iter(_subparsers())) == "run"
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    listed = capsys.readouterr().out.split("COMMAND\n", 1)[1]
    assert listed.split()[0] == "run"


@pytest.mark.parametrize("argv", [["plan_and_preprocess", "4", "--gpu-memory-gb", "nan"],
                                  ["plan_and_preprocess", "4", "--gpu-memory-gb", "inf"],
                                  ["train", "4", "2d", "0", "--initial-lr", "nan"],
                                  ["train", "4", "2d", "0", "--weight-decay", "inf"]])
def test_nan_and_inf_are_usage_errors(argv, capsys):
    """NaN passes every comparison and reached the planner ("cannot convert float NaN to integer")."""
    assert "must be a finite number" in _usage_error(argv, capsys)
