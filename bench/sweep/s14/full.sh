#!/bin/bash
# Session 14: the per-pixel head (dit.pixel_head = 32) on the `small` image flow, from random
# weights, at the shipped models' full FM budget: 27000 steps, the last 4000 a linear cool-down,
# batch 32, lr 5e-4, flips, seed 21. LeDiFlow on the shipped file's auxiliary model and latent
# flow (runs/s13/ledi-init.safetensors = models/dcss-small-ledi.safetensors of session 13), the
# baseline fresh; same network, same flags. Replaces session 13's 2x2-patch runs (p2.sh, stopped
# at FM steps 2180 / 2316): at 5000 steps from scratch the head halved KID on random-conv
# features against the plain network (bench/sweep/s14/eval), at ~1.3x the cost per step, where
# 2x2 patches cost ~3.3x. One thread each, niced, stopping with a checkpoint at the time limit;
# later sessions continue with RESUME=--resume.
# Restarted late in session 14 with the time-modulated head (dit.pixel_head_time, better on every
# metric at 5000 steps); the unmodulated runs are kept in runs/s14/full-*-untimed (FM ~8000 / ~3000).
# LeDiFlow's run continues pixhead.sh's 5000-step run (runs/s14/ph32t, TAG=t, copied to runs/s14/full-ledi):
# a run started with these flags gave bitwise the same losses for the 881 steps it ran (checked),
# since steps before the decay see the same learning rate; hence its --checkpoint-every 1000.
BIN=${BIN:-.dev/lediflow-s14c}
LIMIT=${LIMIT:-7000}
COMMON="--dcss --channels 4 --size 32 --batch 32 --seed 21 --hflip \
  --steps-fm 27000 --set train.fm.lr=5e-4 --set train.fm.decay_steps=4000 --set dit.pixel_head=32 \
  --set dit.pixel_head_time=true \
  --time-limit $LIMIT ${RESUME:-}"
RAYON_NUM_THREADS=1 nice -n 10 $BIN train $COMMON --checkpoint-every 1000 --init runs/s13/ledi-init.safetensors --fresh-velocity \
  --steps-aux 0 --steps-latent 0 --run-dir runs/s14/full-ledi --out runs/s14/full-ledi.f32.safetensors \
  >> runs/s14/full-ledi.log 2>&1 &
RAYON_NUM_THREADS=1 nice -n 10 $BIN train $COMMON --preset small --prior gaussian \
  --checkpoint-every 500 --run-dir runs/s14/full-gauss --out runs/s14/full-gauss.f32.safetensors >> runs/s14/full-gauss.log 2>&1 &
wait
