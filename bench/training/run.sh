#!/usr/bin/env bash
# Training throughput on the DCSS tiles (needs Debian's crawl-tiles-data): short runs of each
# stage of the shipped recipe (batch 32 images; the latent flow on 256 stored latents), with
# 1 and 2 threads; prints the median step time of each stage from the runs' losses.csv.
# Run it on an otherwise idle machine: the numbers are wall-clock times.
#
# Usage: bench/training/run.sh > bench/training/results.md
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
median() { # losses.csv stage -> median seconds per step over the stage's steps after the first 5
    python3 - "$1" "$2" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["stage"] == sys.argv[2]]
t = [float(r["elapsed_s"]) for r in rows]
d = [b - a for a, b in zip(t, t[1:])][5:]
print(f"{statistics.median(d) * 1e3:.0f}" if d else "-")
PY
}
COMMON="--dcss --batch 32 --hflip --checkpoint-every 0"
echo "| stage | threads | median ms per step | images (latents) per s |"
echo "|---|---|---|---|"
for threads in 1 2; do
    export RAYON_NUM_THREADS=$threads
    # Auxiliary model and latent flow from scratch (the shipped recipe's sizes).
    "$BIN" train $COMMON --preset small --steps-aux 40 --steps-latent 200 --steps-fm 1 \
        --run-dir "$TMP/a$threads" --out "$TMP/a$threads.safetensors" > /dev/null 2>&1
    # The image flows of the shipped files, a few more steps from their weights.
    for m in ledi gaussian; do
        "$BIN" train $COMMON --init "models/dcss-small-$m.safetensors" --steps-aux 0 --steps-latent 0 \
            --steps-fm 40 --run-dir "$TMP/$m$threads" --out "$TMP/$m$threads.safetensors" > /dev/null 2>&1
    done
    row() { # label csv stage batch
        ms=$(median "$2" "$3")
        echo "| $1 | $threads | $ms | $(python3 -c "print(round($4 * 1000 / $ms))") |"
    }
    row "auxiliary encoder/decoder (VGL + KL)" "$TMP/a$threads/losses.csv" aux 32
    row "latent flow (stored latents)" "$TMP/a$threads/losses.csv" latent 256
    row "image flow, LeDiFlow file (learned prior draw included)" "$TMP/ledi$threads/losses.csv" fm 32
    row "image flow, Gaussian baseline file" "$TMP/gaussian$threads/losses.csv" fm 32
done
