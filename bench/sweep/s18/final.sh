#!/bin/bash
# Session 18: the latent flow to ship. The recipe the held-out latents chose (bench/sweep/s18/
# wd.sh, reg.sh, monitor.sh: weight decay 1 gave the lowest held-out flow loss, still falling
# at 30000 steps, so no early stopping), now on ALL training images (no --holdout-every; the
# validation split is only logged, never used to pick). Seeds 0 and 1, one thread each, side by side.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
for seed in 0 1; do
  RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 30000 --seed $seed --weight-decay 1 \
    --log $O/final-s$seed.csv --out $O/final-s$seed.f32.safetensors > $O/final-s$seed.log 2>&1 &
done
wait
