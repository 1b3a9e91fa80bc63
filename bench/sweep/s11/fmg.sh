#!/usr/bin/env bash
# Session 11: the shipped Gaussian baseline (f32 source) given FM STEPS more (same flags as fm.sh).
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s10b}
STEPS=${STEPS:-6000}
RAYON_NUM_THREADS=${THREADS:-1} $BIN train --init runs/s10/gauss-fm.f32.safetensors --dcss --batch 32 \
  --steps-aux 0 --steps-latent 0 --steps-fm $STEPS --seed 13 --hflip --checkpoint-every 500 \
  --set train.fm.lr=5e-4 --run-dir runs/s11/fmg --out runs/s11/gauss-fm.f32.safetensors \
  $( [ -e runs/s11/fmg/state.json ] && echo --resume )
