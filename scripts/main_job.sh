#!/usr/bin/env bash
# The main job: the whole pipeline on a generated example dataset (autounet demo):
# plan and preprocess, 5 folds x 2 configurations within a training budget, selection of the best
# configuration and postprocessing, prediction and evaluation of held-out cases, HTML report.
# Workspace: $AUTOUNET_ROOT (default ./autounet_demo). Extra arguments go to `autounet demo`.
set -euo pipefail
export AUTOUNET_ROOT="${AUTOUNET_ROOT:-$PWD/autounet_demo}"
autounet demo "$@"
