#!/usr/bin/env bash
# The main job: a complete small run of the pipeline on a generated example dataset.
# Workspace: $AUTOUNET_ROOT (default ./autounet_demo).
set -euo pipefail
export AUTOUNET_ROOT="${AUTOUNET_ROOT:-$PWD/autounet_demo}"
DATASET=Dataset900_Example
if [ ! -f "$AUTOUNET_ROOT/raw/$DATASET/dataset.json" ]; then
  autounet make_example_dataset "$AUTOUNET_ROOT/raw/$DATASET" --dims 3 --channels 2 --anisotropic --cases 20
fi
autounet plan_and_preprocess "$DATASET"
