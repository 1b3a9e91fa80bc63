#!/usr/bin/env bash
# Session 11: the shipped LeDiFlow model's (f32 source) auxiliary model, STEPS more with hflip (16000 in all).
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s10b}
STEPS=${STEPS:-6000}
RAYON_NUM_THREADS=${THREADS:-2} $BIN train --init runs/s10/ledi-final.f32.safetensors --dcss --batch 32 \
  --steps-aux $STEPS --steps-latent 0 --steps-fm 0 --seed 12 --hflip --checkpoint-every 500 \
  --run-dir runs/s11/aux --out runs/s11/ledi-aux.f32.safetensors $( [ -e runs/s11/aux/state.json ] && echo --resume )
