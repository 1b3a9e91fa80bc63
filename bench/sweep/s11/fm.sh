#!/usr/bin/env bash
# Session 11: the image flow fine-tuned on the new prior, FM STEPS more (same flags as fmg.sh).
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s10b}
STEPS=${STEPS:-6000}
RAYON_NUM_THREADS=${THREADS:-1} $BIN train --init runs/s11/ledi-aux.f32.safetensors --dcss --batch 32 \
  --steps-aux 0 --steps-latent 0 --steps-fm $STEPS --seed 13 --hflip --checkpoint-every 500 \
  --set train.fm.lr=5e-4 --run-dir runs/s11/fm --out runs/s11/ledi-fm.f32.safetensors \
  $( [ -e runs/s11/fm/state.json ] && echo --resume )
