#!/bin/bash
# Session 17: the machine kept session 16's runs this time, so both image flows continue from
# session 16's finished files (bench/sweep/s16/train.sh, 15000 FM steps, the last 4000 decayed)
# for 12000 more FM steps: 27000 in all, the budget bench/sweep/s14/full.sh planned and lost.
# A warm restart: the image flow starts from the file's (EMA) weights with fresh Adam state, the
# same warm-up (200 steps), lr 5e-4 and a cool-down over the last 4000 steps; seed 22 so the
# batches and flow times are new draws. The auxiliary model and latent flow stay as they are
# (--steps-aux 0 --steps-latent 0). Same flags for both: same network, same budget.
# One thread each, side by side. Then bench/sweep/s17/finish.sh.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
LIMIT=${LIMIT:-5700}
mkdir -p runs/s17
COMMON="--dcss --channels 4 --size 32 --batch 32 --seed 22 --hflip --steps-aux 0 --steps-latent 0 \
  --steps-fm 12000 --set train.fm.lr=5e-4 --set train.fm.decay_steps=4000 \
  --checkpoint-every 500 --time-limit $LIMIT ${RESUME:-}"
for w in ledi gauss; do
  RAYON_NUM_THREADS=1 $BIN train $COMMON --init runs/s16/$w.f32.safetensors \
    --run-dir runs/s17/$w --out runs/s17/$w.f32.safetensors >> runs/s17/$w.log 2>&1 &
done
wait
