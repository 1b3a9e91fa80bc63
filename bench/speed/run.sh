#!/usr/bin/env bash
# Reruns the speed measurements in bench/speed/: for each shipped model file and 1 and 2
# threads, bench/torch_reference.py checks parity with PyTorch and times the velocity network's
# forward pass and a whole sampling call in Rust (fp32), PyTorch (fp32, bf16 autocast) and ONNX
# Runtime, writing bench/speed/<ledi|gaussian>-<threads>thread.{json,md}. Its Rust timings are
# `lediflow bench` runs, and each report also carries their memory and throughput table (peak
# heap, prior time and share, forward GFLOP/s against the peak bench/peak_flops.c measures), so
# no separate `lediflow bench` run is needed.
#
# Run from the repository root, on a quiet machine (pause other processes, e.g. kill -STOP, for
# the duration). It installs and builds nothing but the small peak-FLOP/s probe (skipped without
# gcc); first, once:
#
#     cargo build --release
#     python3 -m venv .venv-bench
#     .venv-bench/bin/pip install torch onnx onnxscript onnxruntime safetensors numpy
#
# Environment: LEDIFLOW (default target/release/lediflow), PYTHON (default
# .venv-bench/bin/python), and ARGS for extra bench/torch_reference.py flags (e.g. ARGS=--quick
# for a smoke test).
set -euo pipefail
BIN=${LEDIFLOW:-target/release/lediflow}
PY=${PYTHON:-.venv-bench/bin/python}
OUT=bench/speed
PROBE=$(mktemp -d)/peak_flops
trap 'rm -rf "$(dirname "$PROBE")"' EXIT
have_probe=0
if command -v gcc >/dev/null && gcc -O2 -march=native -fopenmp bench/peak_flops.c -o "$PROBE"; then
    have_probe=1
fi
for th in 1 2; do
    peak=()
    if [ "$have_probe" = 1 ]; then
        OMP_NUM_THREADS=$th "$PROBE" | tee "$OUT/peak-${th}thread.txt"
        peak=(--peak-gflops "$(grep -o '[0-9.]* GFLOP/s' "$OUT/peak-${th}thread.txt" | cut -d' ' -f1)")
    fi
    for m in ledi gaussian; do
        # shellcheck disable=SC2086 # ARGS is a list of flags
        "$PY" bench/torch_reference.py --model "models/dcss-small-$m.safetensors" --lediflow "$BIN" \
            --threads "$th" --batches 1,16,64 --repeats 20 --rounds 5 ${peak[@]+"${peak[@]}"} ${ARGS:-} \
            --json "$OUT/$m-${th}thread.json" --md "$OUT/$m-${th}thread.md" >/dev/null
    done
done
