"""The subcommands that make, convert, check and prepare datasets, and run the whole pipeline."""

from __future__ import annotations

from pathlib import Path

from autounet.cli import commands
from autounet.cli.nnunet import add_unsupported
from autounet.cli.types import (COUNT, MEMORY_GB, POSITIVE_INT, add_command, add_configurations, add_dataset,
                                add_device, add_overwrite, add_processes, add_time_budget, add_wait, number)


def add_example_dataset(sub) -> None:
    p = add_command(sub, commands.make_example_dataset, "write a synthetic dataset in the raw layout",
                    "Write a realistic synthetic dataset in nnU-Net v2's raw layout: training and test images and "
                    "labels, and dataset.json.",
                    ("autounet make_example_dataset raw/Dataset900_Example --dims 3 --anisotropic",
                     "autounet make_example_dataset raw/Dataset982_Echo --video 100",
                     "autounet make_example_dataset raw/Dataset983_Cells --dims 2 --instances",
                     "autounet make_example_dataset raw/Dataset984_EF --video 32 --shape 48 48 --cases 40 --ef"))
    p.add_argument("out", type=Path, help="output folder, e.g. raw/Dataset900_Example")
    p.add_argument("--dims", type=int, choices=(2, 3), default=3, help="3: NIfTI volumes; 2: PNG images (default 3)")
    p.add_argument("--cases", type=number(int, 2, "at least 2"), default=20, help="training cases (default 20)")
    p.add_argument("--test-cases", type=COUNT, default=None, help="test cases (default cases/5)")
    p.add_argument("--channels", type=POSITIVE_INT, default=1, help="channels per case (2D: 3 writes one RGB PNG)")
    p.add_argument("--anisotropic", action="store_true", help="3 x 0.8 x 0.8 mm voxels instead of ~1 mm isotropic")
    p.add_argument("--shape", type=number(int, 8, "at least 8"), nargs="+", default=None,
                   help="typical case shape (Z Y X, or Y X in 2D)")
    p.add_argument("--video", type=number(int, 2, "at least 2"), default=None, metavar="FRAMES",
                   help="instead: echo-like 2D+time videos, 2 frames labelled, the rest 'ignore' (--shape: Y X)")
    p.add_argument("--ef", action="store_true",
                   help="with --video: each video's ejection fraction (%%) as a regression target, no label maps")
    p.add_argument("--instances", action="store_true",
                   help="instead: touching discs (--dims 2) or spheres (--dims 3), one id per object (task 'instance')")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_overwrite(p, "replace the dataset the folder holds")


def add_convert_msd(sub) -> None:
    p = add_command(sub, commands.convert_msd, "convert a Medical Segmentation Decathlon task to the raw layout",
                    "Convert a Decathlon task as downloaded (TaskXX_Name/ with 4D multi-modal images and the old "
                    "dataset.json) into nnU-Net v2's raw layout: one _0000, _0001, ... file per modality, geometry "
                    "kept, under the workspace's raw/ as DatasetXXX_Name.",
                    ("autounet convert_msd Task04_Hippocampus            # -> raw/Dataset004_Hippocampus",
                     "autounet convert_msd Task01_BrainTumour -o /data/raw --dataset-id 501"))
    p.add_argument("task", type=Path, help="the task folder (TaskXX_Name, as downloaded)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="folder of raw datasets to write into (default: the workspace's raw datasets)")
    p.add_argument("--dataset-id", "-overwrite_id", dest="dataset_id", type=number(int, 0, "0 or more"), default=None,
                   help="the new dataset's id (default: the task's number)")
    add_processes(p, None, "worker processes", ("-np",))
    add_overwrite(p, "replace the dataset folder this conversion writes (another name with the same id is never "
                  "replaced)")


def add_convert_medmnist(sub) -> None:
    p = add_command(sub, commands.convert_medmnist, "convert a MedMNIST .npz into a classification dataset",
                    "Convert a MedMNIST .npz (2D or 3D, single- or multi-label) into a case-level raw dataset: "
                    "images as _0000 files, one row of targets per case in a CSV beside them, \"task\" in "
                    "dataset.json. Every split but the held-out one becomes training data (cross-validated); the "
                    "held-out split becomes the test images, with their targets in a CSV of their own.",
                    ("autounet convert_medmnist pneumoniamnist.npz Dataset950_Pneumonia",
                     "autounet convert_medmnist dev.npz raw/Dataset951_Dev --holdout val --class-names normal pneumonia"))
    p.add_argument("npz", type=Path, help="the MedMNIST .npz file")
    p.add_argument("target", type=Path, help="the dataset folder to create (DatasetNNN_Name; a bare name goes "
                   "under the workspace's raw datasets)")
    p.add_argument("--holdout", choices=("test", "val", "train", "none"), default="test",
                   help="the split kept apart as test cases (default: test)")
    p.add_argument("--class-names", nargs="+", default=None, metavar="NAME",
                   help="names of the classes (or targets) in value order (default: class_0, class_1, ...)")
    add_processes(p, None, "worker processes", ("-np",))


def add_verify(sub) -> None:
    p = add_command(sub, commands.verify_dataset, "check a raw dataset and report every problem",
                    "Check dataset.json, the file layout and every image and label; report all problems at once.",
                    ("autounet verify_dataset 900", "autounet verify_dataset /data/raw/Dataset004_Hippocampus -p 4"))
    add_dataset(p)
    add_processes(p)


def add_plan(sub) -> None:
    p = add_command(sub, commands.plan_and_preprocess, "verify, fingerprint, plan and preprocess a dataset",
                    "Verify the dataset, write its fingerprint, plans and splits, and preprocess every training case "
                    "for every planned configuration. Resumable.",
                    ("autounet plan_and_preprocess 900",
                     "autounet plan_and_preprocess -d 4 -c 3d_fullres -np 8 --verify_dataset_integrity   # nnU-Net's"))
    add_dataset(p, many=True)
    add_processes(p)
    p.add_argument("--gpu-memory-gb", "-gpu_memory_target", dest="gpu_memory_gb", type=MEMORY_GB, default=None,
                   help="memory to plan patch and batch size for (default: read from the device: a GPU's memory minus "
                        "a margin, or 30%% of the RAM up to 8 GB on a CPU)")
    add_device(p, "the device to plan for (default: the one present)")
    add_configurations(p, "preprocess only these planned configurations (default: all)")
    p.add_argument("--network", choices=("plain", "residual"), default="plain",
                   help="U-Net encoder: plain conv blocks or residual blocks (ResEnc-style)")
    p.add_argument("--splits", type=Path, default=None, help="use this split file (nnU-Net's splits_final.json format)")
    p.add_argument("--plan-only", "--no_pp", dest="plan_only", action="store_true",
                   help="write fingerprint, plans and splits; do not preprocess")
    p.add_argument("--force", "--clean", dest="force", action="store_true",
                   help="recompute the fingerprint and redo every case")
    p.add_argument("--seed", type=int, default=0, help="seed for intensity sampling, splits and sampling locations")
    p.add_argument("--verify_dataset_integrity", action="store_true",
                   help="accepted for nnU-Net users; autounet always verifies")
    add_wait(p, "planning or preprocessing the dataset")
    add_unsupported(p, "-pl", "-overwrite_plans_name", "-preprocessor_name", "-overwrite_target_spacing", "-npfp")


def _add_precision(p) -> None:
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="float32 training and prediction (default: mixed precision, float16 on CUDA, bfloat16 on "
                        "CPUs with native bf16)")


def _add_schedule(p) -> None:
    p.add_argument("--epochs", type=POSITIVE_INT, default=None, help="a fixed schedule of this many epochs per fold "
                   "instead of the time budget")
    p.add_argument("--iterations-per-epoch", type=POSITIVE_INT, default=None,
                   help="training iterations per epoch of the fixed schedule")


def add_run(sub) -> None:
    p = add_command(sub, commands.run, "the whole pipeline on a dataset, within a time budget (start here)",
                    "Verify, plan, preprocess, train every configuration worth training (all folds, probabilities "
                    "saved), choose the best configuration or ensemble and its postprocessing, and write the report, "
                    "all within --time-budget (without it: 2 h on a CPU, the full schedule on a GPU). Killed and "
                    "started again, it goes on where it stopped. With several GPUs, one fold runs on each.",
                    ("autounet run 900 --time-budget 20m",
                     "autounet run 4 --dry-run --time-budget 8h     # the per-fold commands, e.g. for a job array"))
    add_dataset(p)
    add_time_budget(p, "wall time of the whole run, shared over configurations and folds")
    add_device(p)
    add_processes(p)
    add_configurations(p, "train these configurations (default: those worth it for the dataset and budget)")
    p.add_argument("--gpu-memory-gb", type=MEMORY_GB, default=None, help="memory to plan for (default: the device's)")
    p.add_argument("--network", choices=("plain", "residual"), default="plain", help="U-Net encoder (default plain)")
    p.add_argument("--seed", type=int, default=0, help="seed for planning, splits and sampling (default 0)")
    p.add_argument("--dry-run", action="store_true",
                   help="plan (verify, fingerprint, plans and splits only), print the run as per-fold commands, "
                        "train nothing")
    add_wait(p, "running this dataset, preprocessing it or training one of its folds")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep folds trained on other data than the dataset's now (an edited label, a new plan or "
                        "split), with a warning; by default they are moved to CONFIGURATION/stale_fold_K and trained "
                        "again")
    _add_precision(p)
    _add_schedule(p)


def add_demo(sub) -> None:
    p = add_command(sub, commands.demo, "the whole pipeline on a generated example dataset (the README's main job)",
                    "`autounet run` on a generated 3D example dataset, then prediction and evaluation of its held-out "
                    "cases, all within a time budget. The workspace is $AUTOUNET_ROOT, else ./autounet_demo. "
                    "Resumable.", ("autounet demo", "autounet demo --time-budget 20m"))
    add_device(p)
    add_time_budget(p, "the demo's whole wall time (default 5m); training gets what the rest leaves", "5m")
    _add_precision(p)
    _add_schedule(p)
