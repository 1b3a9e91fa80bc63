#!/usr/bin/env bash
# Session 12: a learning-rate cool-down for the shipped ledi file (f32 source): STEPS FM steps,
# lr LR decayed linearly to 0 over all of them (train.fm.decay_steps), same flags for both priors.
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s12}
STEPS=${STEPS:-4000}
LR=${LR:-3e-4}
RAYON_NUM_THREADS=${THREADS:-1} $BIN train --init runs/s10/ledi-final.f32.safetensors --dcss --batch 32 \
  --steps-aux 0 --steps-latent 0 --steps-fm $STEPS --seed 14 --hflip --checkpoint-every 500 \
  --set train.fm.lr=$LR --set train.fm.decay_steps=$STEPS \
  --run-dir runs/s12/cool-ledi --out runs/s12/ledi-cool.f32.safetensors \
  $( [ -e runs/s12/cool-ledi/ckpt/state.json ] && echo --resume )
