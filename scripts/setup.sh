#!/usr/bin/env bash
# Install autounet and its dependencies into the current Python environment (use a virtual one:
# python3 -m venv .venv && . .venv/bin/activate).
# torch: a torch already installed (e.g. the CUDA build for your GPU) is kept when it fits the
# project's range; otherwise torch ${TORCH_VERSION:-2.13.0} is installed first. On machines where that
# pin resolves to a local CPU-only wheel (this project's CI) an unpinned torch would pull GBs of
# CUDA packages; on a GPU machine install the CUDA build first, e.g.
#   pip install torch --index-url https://download.pytorch.org/whl/cu126
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if "$PY" -c "import sys, torch; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(not ((2, 1) <= v < (3, 0)))" 2>/dev/null; then
    echo "setup: keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    "$PY" -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
fi
# test: pytest; onnx and openvino: the ONNX export and CPU backends; dicom: DICOM SEG output (all tested)
"$PY" -m pip install -q --disable-pip-version-check -e ".[test,onnx,openvino,dicom]"
