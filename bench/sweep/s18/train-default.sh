#!/bin/bash
# Session 18: does `train`'s default latent stage (batch 64, lr 1e-3, 20000 steps) memorise too,
# and does weight decay 1 help there? Emulated with retrain-latent on the shipped encoder
# (precomputed mean latents, as `train` uses), every 10th training image held out; weight decay
# 0 and 1 side by side, one thread each.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
for wd in 0 1; do
  RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 20000 --batch 64 --seed 0 --holdout-every 10 \
    --weight-decay $wd --log $O/b64-wd$wd.csv --out $O/b64-wd$wd.f32.safetensors > $O/b64-wd$wd.log 2>&1 &
done
wait
