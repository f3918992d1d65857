#!/usr/bin/env bash
# Install autounet and its dependencies into the current Python environment.
# torch is pinned first to the CPU build this machine holds (an unpinned torch pulls GBs of CUDA).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
