#!/bin/bash
# Session 18: where does the latent flow stop generalising? The shipped recipe (30000 steps,
# batch 256, lr 1e-3, seed 0) on the shipped encoder, with the held-out flow loss scored every
# 500 steps: (a) every 10th training image left out (--holdout-every 10, early stopping keeps the
# best EMA weights by it), (b) all training images, the validation split watched (log only).
# One thread each, side by side.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
SEED=${SEED:-0}
mkdir -p $O
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 30000 --seed $SEED --holdout-every 10 --keep-best \
  --log $O/hold-s$SEED.csv --out $O/hold-s$SEED.f32.safetensors > $O/hold-s$SEED.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 30000 --seed $SEED \
  --log $O/all-s$SEED.csv --out $O/all-s$SEED.f32.safetensors > $O/all-s$SEED.log 2>&1 &
wait
