#!/usr/bin/env bash
# The GPU path end to end, on a machine with a CUDA GPU: install, index the demo ads on the CPU and on
# the GPU into two caches, compare every stored number (benchmarks/compare_caches.py: max abs diff per
# table against its stated tolerance) and print the speed-up.
#
#   bash benchmarks/device_check.sh [OUT_DIR]        # default OUT_DIR: cache/device-check
#
# Environment:
#   CHECK_DEVICE=cuda     the device of the second run (default cuda; CHECK_DEVICE=cpu is a dry run of
#                         the whole script on a machine without a GPU: both caches must then be equal)
#   CHECK_INSTALL=1       pip install -r requirements.txt, pip install -e ., python cli.py setup first
#                         (0: the environment is ready)
#   CHECK_EXPLAIN=1       index with explanations (LIME and SHAP of the key frames); 0: --no-explain
#   CHECK_VIDEOS=DIR      the videos to index (default cache/demo-ads, fetched by `python cli.py setup`)
#   PYTHON=python         the interpreter
#
# The audio model runs on onnxruntime's CUDAExecutionProvider only where the onnxruntime-gpu package
# replaces onnxruntime (not pinned here); otherwise the log says "soundtrack on CPUExecutionProvider".
#
# Exit code: 0 when the stored numbers agree within tolerance, 1 when they do not, 2 when a step failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY=${PYTHON:-python}
DEVICE=${CHECK_DEVICE:-cuda}
OUT=${1:-cache/device-check}
VIDEOS=${CHECK_VIDEOS:-cache/demo-ads}
EXPLAIN=--explain
[ "${CHECK_EXPLAIN:-1}" = 0 ] && EXPLAIN=--no-explain

step() { echo; echo "== $*"; }
fail() { echo "device_check: $*" >&2; exit 2; }

if [ "${CHECK_INSTALL:-1}" = 1 ]; then
    step "install"
    "$PY" -m pip install -q -r requirements.txt || fail "pip install -r requirements.txt failed"
    "$PY" -m pip install -q -e . || fail "pip install -e . failed"
    "$PY" cli.py setup || fail "python cli.py setup failed"
fi

step "machine"
"$PY" - "$DEVICE" <<'EOF' || fail "PyTorch does not see the device asked for"
import sys
import onnxruntime
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
print(f"onnxruntime {onnxruntime.__version__}, providers: {', '.join(onnxruntime.get_available_providers())}")
if sys.argv[1].startswith("cuda") and not torch.cuda.is_available():
    sys.exit(1)
EOF

[ -d "$VIDEOS" ] || fail "$VIDEOS does not exist (run: python cli.py setup)"
rm -rf "$OUT/cpu" "$OUT/device"
mkdir -p "$OUT"

run() {  # run DEVICE CACHE -> prints seconds
    local start end
    start=$(date +%s.%N)
    # one process on either device: like for like (a GPU is fed by one process anyway)
    "$PY" cli.py index "$VIDEOS" --cache "$2" --device "$1" --workers 1 "$EXPLAIN" >"$2.log" 2>&1 || {
        cat "$2.log" >&2; fail "index --device $1 failed"; }
    end=$(date +%s.%N)
    echo "$start $end" | awk '{printf "%.2f", $2 - $1}'
}

step "index $VIDEOS on cpu ($EXPLAIN)"
CPU_S=$(run cpu "$OUT/cpu") || exit 2
tail -n 1 "$OUT/cpu.log"
step "index $VIDEOS on $DEVICE ($EXPLAIN)"
DEVICE_S=$(run "$DEVICE" "$OUT/device") || exit 2
grep -h "models on\|soundtrack on" "$OUT/device.log" || true
tail -n 1 "$OUT/device.log"

step "compare every stored number"
"$PY" benchmarks/compare_caches.py "$OUT/cpu" "$OUT/device"
VERDICT=$?

step "speed"
echo "cpu: ${CPU_S} s   $DEVICE: ${DEVICE_S} s   speed-up: $(echo "$CPU_S $DEVICE_S" | awk '{printf "%.2f", $1 / $2}')× (whole process: imports, model loading and CUDA start-up included)"
exit $VERDICT
