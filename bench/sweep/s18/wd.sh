#!/bin/bash
# Session 18: decoupled weight decay on the latent flow, long runs. The shipped recipe (batch
# 256, lr 1e-3, seed SEED) with --weight-decay WD for STEPS steps, every 10th training image
# left out and scored (--holdout-every 10), the best EMA weights by that loss kept.
# Usage: wd.sh WD STEPS [SEED]   (one thread)
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
WD=$1; STEPS=$2; SEED=${3:-0}
name=wd$WD-$STEPS-s$SEED
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps $STEPS --seed $SEED --holdout-every 10 --keep-best \
  --weight-decay $WD --log $O/$name.csv --out $O/$name.f32.safetensors > $O/$name.log 2>&1
