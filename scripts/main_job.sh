#!/usr/bin/env bash
# The main job: the whole pipeline on a generated example dataset (autounet demo = autounet run on it
# with a 5-minute budget): plan and preprocess, the configurations worth training (5 folds each),
# selection of the best configuration and postprocessing, HTML report, then prediction and
# evaluation of the held-out cases.
# Workspace: $AUTOUNET_ROOT (default ./autounet_demo). Extra arguments go to `autounet demo`.
set -euo pipefail
export AUTOUNET_ROOT="${AUTOUNET_ROOT:-$PWD/autounet_demo}"
autounet demo "$@"
