#!/bin/bash
# Session 13: x-prediction (the image network emits the clean image; velocity = (x1_hat - x_t) /
# max(1 - t, 0.05), loss on the velocity as before) against the usual velocity prediction, both
# a new `small` image flow from random weights on the shipped LeDiFlow file's prior (aux + latent
# flow from the file), same seed, data order and budget: 5000 FM steps, batch 32, lr 5e-4, flips.
BIN=${BIN:-.dev/lediflow-xpred}
STEPS=${STEPS:-5000}
COMMON="--init runs/s13/ledi-init.safetensors --fresh-velocity --dcss --batch 32 --steps-aux 0 \
  --steps-latent 0 --steps-fm $STEPS --seed 21 --hflip --checkpoint-every 1000 --set train.fm.lr=5e-4 ${RESUME:-}"
RAYON_NUM_THREADS=1 $BIN train $COMMON --set dit.prediction=data --run-dir runs/s13/xp-data \
  --out runs/s13/xp-data.f32.safetensors >> runs/s13/xp-data.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN train $COMMON --set dit.prediction=velocity --run-dir runs/s13/xp-vel \
  --out runs/s13/xp-vel.f32.safetensors >> runs/s13/xp-vel.log 2>&1 &
wait
