#!/bin/bash
# Session 14: both shipped image flows get a per-pixel head (dit.pixel_head = 32) and 4000 more
# FM steps from their f32 sources (runs/s12/*-cool.f32.safetensors, the shipped files before
# fp16): `--init` keeps the file's velocity network and adds the head with its last conv at
# zero, so training starts from exactly the shipped velocity. Same flags for both, the
# session-12 cool-down recipe: lr 3e-4 after 200 warm-up steps, decayed linearly to 0 over the
# 4000 steps, flips, seed 15. Auxiliary model and latent flow untouched.
BIN=${BIN:-.dev/lediflow-s14b}
STEPS=${STEPS:-4000}
H=${H:-32}
COMMON="--dcss --batch 32 --steps-aux 0 --steps-latent 0 --steps-fm $STEPS --seed 15 --hflip \
  --checkpoint-every 500 --set train.fm.lr=3e-4 --set train.fm.decay_steps=$STEPS --set dit.pixel_head=$H ${RESUME:-}"
RAYON_NUM_THREADS=1 $BIN train --init runs/s12/ledi-cool.f32.safetensors $COMMON --run-dir runs/s14/grow-ledi \
  --out runs/s14/grow-ledi.f32.safetensors >> runs/s14/grow-ledi.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN train --init runs/s12/gauss-cool.f32.safetensors $COMMON --run-dir runs/s14/grow-gauss \
  --out runs/s14/grow-gauss.f32.safetensors >> runs/s14/grow-gauss.log 2>&1 &
wait
