#!/usr/bin/env bash
# Quality against NFE of the shipped model files without a class (the main job), scored on the
# 518 held-out tiles of the training data, `--dcss --whole --angband` (needs Debian's
# crawl-tiles-data, angband-data and angband): Euler and Midpoint over the NFE grid 2..32, five sampling
# seeds per point (metrics are mean and spread over the seeds' sample sets), each model on the
# solver grid its file recommends (LeDiFlow: equal steps; the Gaussian baseline: time shift 3).
# Writes bench/quality/{ledi,gaussian}-{euler,midpoint}.{md,json,log}; then
#     cargo run --release --example plot_sweep -- ledi gaussian bench/quality
# draws bench/quality/{swd,kid}-vs-nfe.png.
#
# Usage: bench/quality/run.sh [ledi|gaussian ...]   (default: both, one after the other; two side by
# side on a 2-core machine: RAYON_NUM_THREADS=1 bench/quality/run.sh ledi & ... gaussian)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
OUT=bench/quality
SEEDS=${SEEDS:-0,1,2,3,4}
sweep() { # name solver steps
    "$BIN" eval --model "models/dcss-small-$1.safetensors" --dcss --whole --angband --solver "$2" --steps "$3" --seed "$SEEDS" \
        --json "$OUT/$1-$2.json" > "$OUT/$1-$2.md" 2> "$OUT/$1-$2.log"
}
for name in "${@:-ledi gaussian}"; do
    for n in $name; do
        sweep "$n" midpoint 1,2,4,8,16
        sweep "$n" euler 2,4,8,16,32
    done
done
