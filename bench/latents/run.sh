#!/usr/bin/env bash
# Where the shipped LeDiFlow file's samples lose detail: the same image flow and prior decoder fed
# two kinds of latents, scored against the 518 held-out tiles of `--dcss --whole --angband`
# (needs Debian's crawl-tiles-data, angband-data and angband), no class, Midpoint at 4, 8 and
# 32 NFE, three sampling seeds:
# - ledi-flow.{md,json}: latents from the latent flow, as every sampling call draws them;
# - ledi-train.{md,json}: the encoder's means of training tiles (`eval --latents train`), the
#   latent flow taken out of the measurement.
# The gap between the two is what a better latent flow could win; what remains in the second
# against the real tiles is the image flow's and the prior decoder's share.
#
# Usage: bench/latents/run.sh   (LEDIFLOW_BIN: the binary; single-threaded with RAYON_NUM_THREADS=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
OUT=bench/latents
SEEDS=${SEEDS:-0,1,2}
for latents in flow train; do
    "$BIN" eval --model models/dcss-small-ledi.safetensors --dcss --whole --angband --latents "$latents" \
        --steps 2,4,16 --seed "$SEEDS" --json "$OUT/ledi-$latents.json" > "$OUT/ledi-$latents.md" 2> /dev/null
done
echo "wrote $OUT"
