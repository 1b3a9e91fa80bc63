#!/bin/bash
# Session 18, after shipping: two more weight-decay variants on the held-out latents (every 10th
# training image left out), for the next session: batch 1024 (10000 steps, the epochs of 40000
# at 256) and a wider flow (hidden 512, 15000 steps at batch 256); weight decay 1, seed 0, one
# thread each, side by side.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 10000 --batch 1024 --seed 0 --holdout-every 10 \
  --weight-decay 1 --log $O/more-b1024.csv --out $O/more-b1024.f32.safetensors > $O/more-b1024.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 15000 --hidden 512 --seed 0 --holdout-every 10 \
  --weight-decay 1 --log $O/more-h512.csv --out $O/more-h512.f32.safetensors > $O/more-h512.log 2>&1 &
wait
