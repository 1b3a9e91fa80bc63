#!/bin/bash
# Session 14: a per-pixel head on the `small` image flow (dit.pixel_head = H: 3x3 convolutions
# over x_t at full resolution, fed the DiT's final tokens, added to the DiT's velocity), from
# random weights on the shipped LeDiFlow file's prior, with exactly the flags of session 13's
# velocity control (bench/sweep/s13/xpred.sh, runs/s13/xp-vel): 5000 FM steps, batch 32,
# lr 5e-4, flips, seed 21. EXTRA adds flags (e.g. EXTRA="--set dit.pixel_head_time=true" TAG=t:
# the head modulated by the flow time), TAG names the run.
BIN=${BIN:-.dev/lediflow-s14}
STEPS=${STEPS:-5000}
H=${H:-32}
RAYON_NUM_THREADS=${THREADS:-1} $BIN train --init runs/s13/ledi-init.safetensors --fresh-velocity --dcss \
  --batch 32 --steps-aux 0 --steps-latent 0 --steps-fm $STEPS --seed 21 --hflip --checkpoint-every 1000 \
  --set train.fm.lr=5e-4 --set dit.pixel_head=$H ${EXTRA:-} ${RESUME:-} --run-dir runs/s14/ph$H${TAG:-} \
  --out runs/s14/ph$H${TAG:-}.f32.safetensors >> runs/s14/ph$H${TAG:-}.log 2>&1
