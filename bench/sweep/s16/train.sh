#!/bin/bash
# Session 16: the full-budget head runs of bench/sweep/s14/full.sh (27000 FM steps) did not survive
# between sessions (their checkpoints at FM 23273 / 22141 were lost with the machine), so both
# image flows are trained again with a budget that fits one session: the time-modulated per-pixel
# head (dit.pixel_head = 32, dit.pixel_head_time), 15000 FM steps from random weights, the last
# 4000 a linear cool-down to 0, batch 32, lr 5e-4, flips, seed 21; everything else as full.sh.
# LeDiFlow on the shipped file's auxiliary model and latent flow (--init ... --fresh-velocity),
# the baseline fresh: same network, same steps, same flags. One thread each, side by side.
# (models/dcss-small-ledi.safetensors was the session-12 file when this ran; the file it produced
# carries the same auxiliary model and latent flow and gets a fresh image flow here again.)
# Then: SRC=runs/s16/ O=runs/s16/eval bash bench/sweep/s15/finish.sh (reports in s16/eval/).
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
LIMIT=${LIMIT:-7500}
mkdir -p runs/s16
COMMON="--dcss --channels 4 --size 32 --batch 32 --seed 21 --hflip \
  --steps-fm 15000 --set train.fm.lr=5e-4 --set train.fm.decay_steps=4000 --set dit.pixel_head=32 \
  --set dit.pixel_head_time=true --checkpoint-every 500 --time-limit $LIMIT ${RESUME:-}"
RAYON_NUM_THREADS=1 $BIN train $COMMON --init models/dcss-small-ledi.safetensors --fresh-velocity \
  --steps-aux 0 --steps-latent 0 --run-dir runs/s16/ledi --out runs/s16/ledi.f32.safetensors \
  >> runs/s16/ledi.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN train $COMMON --preset small --prior gaussian \
  --run-dir runs/s16/gauss --out runs/s16/gauss.f32.safetensors >> runs/s16/gauss.log 2>&1 &
wait
