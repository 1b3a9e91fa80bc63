#!/usr/bin/env bash
# Session 11: retrain the latent flow on the new encoder (30000 steps, batch 256), then evaluate.
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s10b}
RAYON_NUM_THREADS=2 $BIN retrain-latent --model runs/s11/ledi-fm.f32.safetensors --dcss --steps 30000 \
  --out runs/s11/ledi-final.f32.safetensors > runs/s11/latent.log 2>&1
runs/s11/finish.sh runs/s11/ledi-final.f32.safetensors ledi > runs/s11/finish-l.log 2>&1
