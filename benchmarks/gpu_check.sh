#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py measures; this script makes it runnable).
#
#   bash benchmarks/gpu_check.sh --prepare   here, with the package index reachable: the wheels the
#       GPU machine's image lacks (SimpleITK, connected-components-3d, batchgenerators and its pure
#       Python needs, for its Python 3.12) into .whl/, and the shared 2D dataset into .gpu_data/;
#       both are kept out of git (.git/info/exclude) and travel with `carry`.
#   bash benchmarks/gpu_check.sh [OUT]       on the GPU machine (carry .whl and .gpu_data): installs
#       the wheels, runs the CUDA-marked tests, then the measurements; results in OUT (default
#       gpu_check_out/). On a machine without a CUDA GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"

if [ "${1:-}" = "--prepare" ]; then
    for d in /.whl/ /.gpu_data/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
    mkdir -p .whl .gpu_data
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "SimpleITK==2.5.*" "connected-components-3d==4.*"
    "$PY" -m pip wheel -q --no-deps -w .whl "batchgenerators==0.25.*" future unittest2
    if [ -d ../shared/datasets/Dataset901_ISBI2012EM ]; then
        cp -r ../shared/datasets/Dataset901_ISBI2012EM .gpu_data/
    fi
    du -sh .whl .gpu_data
    exit 0
fi

OUT="${1:-gpu_check_out}"
mkdir -p "$OUT"
if ! "$PY" -c "import SimpleITK, batchgenerators, cc3d" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu_check: SimpleITK, batchgenerators or cc3d missing and no wheels in .whl/ (run: bash benchmarks/gpu_check.sh --prepare)" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site .whl/*.whl
    export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA GPU on this machine; nothing measured (skipped)"
    exit 0
fi
set +e
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda_tests.log"
set -e
SUMMARY="$(tail -n 1 "$OUT/cuda_tests.log")"
ISBI=()
[ -d .gpu_data/Dataset901_ISBI2012EM ] && ISBI=(--isbi .gpu_data/Dataset901_ISBI2012EM)
exec "$PY" benchmarks/gpu_check.py --out "$OUT" --cuda-tests "$SUMMARY" "${ISBI[@]}"
