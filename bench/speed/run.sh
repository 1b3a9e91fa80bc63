#!/usr/bin/env bash
# Reruns every measurement in bench/speed/ (from the repository root, on a quiet machine: pause
# other processes, e.g. kill -STOP, for the duration). Needs a release build, gcc with OpenMP,
# and the .venv-bench virtual environment of bench/torch_reference.py.
set -euo pipefail
BIN=${LEDIFLOW:-target/release/lediflow}
PY=${PYTHON:-.venv-bench/bin/python}
OUT=bench/speed
gcc -O2 -march=native -fopenmp bench/peak_flops.c -o /tmp/peak_flops
for th in 1 2; do
    OMP_NUM_THREADS=$th /tmp/peak_flops | tee "$OUT/peak-${th}thread.txt"
    peak=$(grep -o '[0-9.]* GFLOP/s' "$OUT/peak-${th}thread.txt" | cut -d' ' -f1)
    for m in ledi gaussian; do
        RAYON_NUM_THREADS=$th "$BIN" bench --model "models/dcss-small-$m.safetensors" --batches 1,16,64 \
            --peak-gflops "$peak" --repeats 10 --json "$OUT/$m-${th}thread.json" >"$OUT/$m-${th}thread.md" 2>"$OUT/$m-${th}thread.log"
    done
    "$PY" bench/torch_reference.py --model models/dcss-small-ledi.safetensors --threads "$th" --repeats 10 --rounds 5 \
        --json "$OUT/reference-${th}thread.json" >"$OUT/reference-${th}thread.md"
    "$PY" bench/torch_reference.py --model models/dcss-small-gaussian.safetensors --threads "$th" --repeats 10 --rounds 5 --no-onnx \
        --json "$OUT/reference-gaussian-${th}thread.json" >"$OUT/reference-gaussian-${th}thread.md"
done
