"""The subcommands that train, choose, predict, evaluate and report."""

from __future__ import annotations

from pathlib import Path

from autounet.api import BACKENDS, VARIANTS
from autounet.cli import commands
from autounet.cli.nnunet import add_unsupported
from autounet.cli.types import (COUNT, POSITIVE, POSITIVE_INT, add_checkpoint, add_command, add_configurations,
                                add_dataset, add_device, add_folds, add_output, add_overwrite, add_processes,
                                add_time_budget, add_wait, fold, number)


def add_train(sub) -> None:
    p = add_command(sub, commands.train, "train folds of a configuration (5-fold cross-validation)",
                    "Train a U-Net on one or more folds of a planned configuration, then predict the fold's "
                    "validation cases. Resumable with --continue. `autounet run` trains every fold for you.",
                    ("autounet train 900 3d_fullres 0 1 2 3 4 --time-budget 30m --save-probabilities",
                     "autounet train 4 3d_fullres 0 --c --npz -device cpu      # nnU-Net's spellings"))
    add_dataset(p)
    p.add_argument("configuration", help="2d, 3d_fullres, 3d_lowres or 3d_cascade_fullres (as planned)")
    p.add_argument("fold", nargs="+", type=fold, help="fold number(s) 0-4, or 'all' to train on every case")
    p.add_argument("--continue", "--c", dest="resume", action="store_true", help="resume from the last checkpoint")
    add_device(p)
    add_time_budget(p, "wall-clock budget per fold: autounet measures this machine's speed and chooses epochs x "
                    "iterations (and a lighter network if needed) to finish on time")
    for flag, kind, text in (("--epochs", POSITIVE_INT, "epochs (default 1000)"),
                             ("--iterations-per-epoch", POSITIVE_INT, "training iterations per epoch (default 250)"),
                             ("--val-iterations-per-epoch", POSITIVE_INT, "validation iterations per epoch for the "
                                                                          "pseudo-Dice (default 50)"),
                             ("--initial-lr", POSITIVE, "initial learning rate (default 0.01)"),
                             ("--weight-decay", number(float, 0, "0 or more"), "weight decay (default 3e-5)"),
                             ("--batch-size", POSITIVE_INT, "override the plan's batch size"),
                             ("--seed", int, "random seed (default 0)")):
        p.add_argument(flag, dest=flag[2:].replace("-", "_"), type=kind, default=None, help=text)
    p.add_argument("--num-workers", dest="num_workers", type=COUNT, default=None,
                   help="augmentation worker processes (default: from the machine; 0 = in the main process)")
    p.add_argument("--no-augmentation", dest="augmentation", action="store_false", default=None,
                   help="train without data augmentation")
    p.add_argument("--no-deep-supervision", dest="deep_supervision", action="store_false", default=None,
                   help="loss on the full-resolution output only")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="float32 (default: mixed precision, float16 on CUDA, bfloat16 on CPUs with native bf16)")
    p.add_argument("--compile", dest="compile", action="store_true", default=None, help="torch.compile the network")
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help="train a lighter variant of the planned network (default: the planned one; with "
                        "--time-budget, the heaviest that learns in the budget); `autounet run` passes the one it "
                        "decided for every fold")
    p.add_argument("--no-validation", dest="final_validation", action="store_false", default=None,
                   help="skip predicting the validation cases at the end")
    p.add_argument("--no-tta", dest="mirror", action="store_false", default=None,
                   help="no test-time mirroring in the final validation")
    p.add_argument("--save-probabilities", "--npz", dest="save_probabilities", action="store_true", default=None,
                   help="also write the validation probabilities (.npz), needed for ensembling")
    add_wait(p, "training the same fold")
    add_unsupported(p, "-p", "-tr", "-num_gpus", "-pretrained_weights", "--val", "--val_best",
                    "--disable_checkpointing", "--use_compressed")


def add_predict(sub) -> None:
    p = add_command(sub, commands.predict, "segment new images with a trained model",
                    "Segment a folder of images (CASE_XXXX.ext files) or one image, or a folder of DICOM series "
                    "(one case each). The masks get the inputs' geometry and file format (NIfTI or DICOM SEG for "
                    "DICOM). --continue resumes an interrupted run; --part/--parts split one over several jobs. "
                    "Exit code 1 if any input failed.",
                    ("autounet predict -i new_images -o masks -d 900",
                     "autounet predict -i in -o out -d 4 -c 3d_fullres -f 0 1 2 3 4 -chk best "
                     "--disable_tta -step_size 0.5 --save_probabilities   # nnU-Net's spellings"))
    p.add_argument("-i", "--input", required=True, type=Path, help="folder of images, or one image file")
    add_output(p, "output folder (or file, for one image)")
    p.add_argument("-d", "--dataset", default=None, help="dataset whose trained model to use")
    add_configurations(p, "configuration(s); several are ensembled (default: the chosen best configuration or ensemble)")
    p.add_argument("--no-postprocessing", dest="postprocessing", action="store_false",
                   help="do not apply the postprocessing chosen on the cross-validation")
    add_folds(p)
    p.add_argument("-m", "--model", type=Path, default=None,
                   help="an exported model (.zip, or .onnx: runs without torch) instead of -d")
    add_checkpoint(p)
    p.add_argument("--no-tta", "--disable_tta", dest="mirror", action="store_false",
                   help="no test-time mirroring (8x faster in 3D)")
    p.add_argument("--step", "-step_size", type=POSITIVE, default=0.5,
                   help="window step as a fraction of the patch, at most 1 (default 0.5)")
    p.add_argument("--save-probabilities", "--save_probabilities", dest="save_probabilities", action="store_true",
                   help="also write probabilities (.npz + .json)")
    add_device(p)
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="predict in float32 (default: float16 on CUDA; bfloat16 on CPUs with native bf16 support, "
                        "with the torch and openvino backends)")
    p.add_argument("--int8", action="store_true",
                   help="CPU: run the convolutions in 8-bit integers with ONNX Runtime, calibrated on each "
                        "fold's training cases (needs -d and autounet[onnx]); measured 2x faster than float32, "
                        "Dice within 0.0022 on two trained models; calibrating takes 20-65 s per fold the first "
                        "time, then the network is kept in ~/.cache/autounet/int8 ($AUTOUNET_CACHE); check it on "
                        "cases you know")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="what runs the network: torch, or on the CPU onnxruntime/openvino (pip install "
                        "'autounet[onnx]' / 'autounet[openvino]'); default torch for checkpoints, for a .onnx model "
                        "openvino if installed, else onnxruntime")
    add_processes(p, 1, "preprocessing worker processes", ("-npp",))
    add_overwrite(p, "replace outputs that exist already (default: such a case fails, naming its file, and the others "
                     "are predicted)")
    p.add_argument("--continue", "--continue_prediction", dest="resume", action="store_true",
                   help="keep the outputs that are complete and predict only the other cases (after an interruption; "
                        "a case-level model keeps the rows of its predictions CSV)")
    p.add_argument("--part", "-part_id", type=COUNT, default=None,
                   help="with --parts N: predict only share K (0 to N-1) of the cases, e.g. one Slurm array task")
    p.add_argument("--parts", "-num_parts", type=POSITIVE_INT, default=None,
                   help="split the cases into N shares (every N-th case in sorted order): N jobs cover each case once")
    p.add_argument("--output-format", "--output_format", choices=("nifti", "dicom-seg"), default=None,
                   help="for a folder of DICOM series: masks as NIfTI (default) or as DICOM SEG referencing each "
                        "series (pip install 'autounet[dicom]')")
    p.add_argument("--report", type=Path, default=None, metavar="RUN.json",
                   help="write a run manifest there: version, model and its hash, device, backend, precision, "
                        "per-case inputs, outputs, seconds and peak memory")
    add_unsupported(p, "-tr", "-nps", "-prev_stage_predictions", "--disable_progress_bar")


def add_ensemble(sub) -> None:
    p = add_command(sub, commands.ensemble, "average the saved probabilities of several prediction folders",
                    "Average CASE.npz probabilities of several folders (written with --save-probabilities) and write "
                    "the label maps.", ("autounet ensemble -i pred_2d pred_3d -o pred_ensemble",))
    p.add_argument("-i", "--input", nargs="+", required=True, type=Path, help="two or more prediction folders")
    add_output(p, "output folder")
    p.add_argument("--save-probabilities", action="store_true", help="also write the averaged probabilities")


def add_export(sub) -> None:
    p = add_command(sub, commands.export_model, "write a trained model to a portable zip or ONNX file",
                    "Write the chosen best configuration (or ensemble) with its postprocessing, or the configurations "
                    "given with -c, to a zip (the checkpoints) or an ONNX file (every fold in one graph, the plans "
                    "in its metadata and in a .json beside it; predicts without torch) that `autounet predict -m` "
                    "takes.",
                    ("autounet export_model 900 -o model.zip", "autounet export_model 900 -c 3d_fullres -f 0 -o f0.zip",
                     "autounet export_model 900 -o model.onnx    # pip install 'autounet[onnx]'"))
    add_dataset(p)
    add_configurations(p, "configuration(s) to export (default: the chosen best, with its postprocessing)")
    add_output(p, "file to write (.zip or .onnx)")
    add_folds(p)
    add_checkpoint(p)
    p.add_argument("--format", choices=("zip", "onnx"), default=None,
                   help="default: onnx for a .onnx file name, else zip")
    add_overwrite(p, "replace an existing file")


def add_import(sub) -> None:
    p = add_command(sub, commands.import_model, "unpack an exported model zip",
                    "Unpack a model zip into a folder, refusing members that would land outside it. "
                    "`autounet predict -m ZIP` does this by itself.", ("autounet import_model model.zip -o model/",))
    p.add_argument("zip", type=Path, help="the exported model")
    add_output(p, "folder to unpack into (empty or new)")
    add_overwrite(p, "replace what the folder holds")


def add_find_best(sub) -> None:
    p = add_command(sub, commands.find_best_configuration, "choose the best configuration/ensemble and postprocessing",
                    "Score every trained configuration and pair ensemble on the 5-fold cross-validation, pick the "
                    "best (ties go to the simpler), choose its postprocessing, print the predict command.",
                    ("autounet find_best_configuration 900", "autounet find_best_configuration 4 -c 2d 3d_fullres"))
    add_dataset(p)
    add_processes(p)
    add_configurations(p, "only these (default: every trained one)")
    p.add_argument("--no-ensembles", "--disable_ensembling", dest="no_ensembles", action="store_true",
                   help="do not consider ensembles")
    add_unsupported(p, "-tr", "-f")


def add_apply_postprocessing(sub) -> None:
    p = add_command(sub, commands.apply_postprocessing, "apply postprocessing rules to a folder of masks",
                    "Apply the rules find_best_configuration chose (its postprocessing file) to every mask of a "
                    "folder.", ("autounet apply_postprocessing -i masks -o masks_pp -pp rules.json",))
    p.add_argument("-i", "--input", required=True, type=Path, help="folder of masks")
    add_output(p, "folder to write the postprocessed masks to")
    p.add_argument("-pp", "--postprocessing", required=True, type=Path, help="the rules file")
    add_processes(p)
    add_overwrite(p, "allow -o to be the input folder (its masks are replaced)")


def add_evaluate(sub) -> None:
    p = add_command(sub, commands.evaluate, "per-case, per-class metrics of predictions against references",
                    "Dice, IoU, TP/FP/FN, HD95 and normalized surface Dice (mm) per case and class; writes "
                    "summary.json and metrics.csv.", ("autounet evaluate -r labels --prediction masks",))
    p.add_argument("-r", "--reference", required=True, type=Path, help="folder of reference label maps")
    p.add_argument("--prediction", "-pred", required=True, type=Path, help="folder of predicted label maps")
    add_output(p, "where to write (default: the prediction folder)", required=False)
    p.add_argument("--nsd-tolerance", type=number(float, 0, "0 or more"), default=1.0,
                   help="surface Dice tolerance in mm (default 1)")
    add_processes(p)


def add_report(sub) -> None:
    p = add_command(sub, commands.report, "write an HTML report of a dataset's plan, training and selection",
                    "Write the HTML report: the plan, training curves, the cross-validation table, the chosen "
                    "postprocessing and overlays.", ("autounet report 900", "autounet report 900 -o /tmp/report"))
    add_dataset(p)
    add_output(p, "folder (default: the dataset's results)", required=False)
