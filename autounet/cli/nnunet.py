"""nnU-Net's flags that have no equivalent: accepted by the parser, then refused with what
autounet does instead (so that a habit gets an answer, not "unrecognized arguments")."""

from __future__ import annotations

import argparse

INSTEAD = {
    "-p": "nnU-Net's plans identifier; autounet keeps one plan per dataset, so leave it out",
    "-f": "every fold of the dataset's splits is scored (5-fold cross-validation); train the missing ones",
    "-tr": "autounet has one trainer; its settings are flags of `autounet train` (--epochs, --initial-lr, ...)",
    "-pl": "autounet has one planner; --gpu-memory-gb and --network residual change what it plans",
    "-num_gpus": "several GPUs train one fold with torchrun: torchrun --nproc_per_node N -m autounet.cli train ...; "
                 "`autounet run` trains one fold per GPU by itself",
    "-pretrained_weights": "autounet trains from scratch; fine-tuning from other weights is not supported",
    "--val": "a fold is validated when its training ends; `autounet train ... --continue` on a finished fold "
             "validates it again",
    "--val_best": "validation uses the final checkpoint; predict with --checkpoint best to use the best one",
    "--disable_checkpointing": "checkpoints are always written (atomically, every epoch): they make runs resumable",
    "--use_compressed": "preprocessed arrays are memory-mapped .npy files, never compressed",
    "-overwrite_plans_name": "autounet keeps one plan per dataset",
    "-preprocessor_name": "autounet has one preprocessor",
    "-overwrite_target_spacing": "the target spacing comes from the fingerprint's rule (see the README)",
    "-npfp": "-p sets the worker processes of every step",
    "-nps": "writing runs in a thread beside prediction; -p sets the preprocessing workers",
    "-prev_stage_predictions": "the cascade predicts its low-resolution stage by itself",
    "--disable_progress_bar": "progress bars appear only on a terminal; elsewhere progress lines at most every 10 s",
}


class NoEquivalent(argparse.Action):
    """An nnU-Net flag autounet has no equivalent for: a usage error that says what to do instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        instead = INSTEAD[self.option_strings[0]]
        raise argparse.ArgumentError(self, f"is nnU-Net's; autounet has no equivalent: {instead}")


def add_unsupported(p: argparse.ArgumentParser, *flags: str) -> None:
    """Accept ``flags`` (with or without a value) only to explain them (hidden from --help)."""
    for flag in flags:
        p.add_argument(flag, action=NoEquivalent, nargs="*", help=argparse.SUPPRESS)
