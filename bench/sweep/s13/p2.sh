#!/bin/bash
# Session 13 (2026-11-28): a finer image flow, 2x2 patches (256 tokens instead of 64), otherwise
# the `small` velocity network, for LeDiFlow (on the shipped model's auxiliary model and latent
# flow) and the Gaussian baseline, same network, same flags. Planned for the lent GPU, which was
# not lent after all: on the CPU, one thread each, niced, stopping with a checkpoint at the time
# limit; a later session continues with the same command (RESUME=--resume).
# Budget: 27000 FM steps like the shipped models, the last 4000 a linear cool-down.
BIN=${BIN:-.dev/lediflow-s13}
LIMIT=${LIMIT:-7700}
COMMON="--dcss --channels 4 --size 32 --batch 32 --seed 21 --hflip --checkpoint-every 500 \
  --steps-fm 27000 --set train.fm.lr=5e-4 --set train.fm.decay_steps=4000 --set dit.patch_size=2 \
  --time-limit $LIMIT ${RESUME:-}"
RAYON_NUM_THREADS=1 nice -n 10 $BIN train $COMMON --init runs/s13/ledi-init.safetensors \
  --steps-aux 0 --steps-latent 0 --run-dir runs/s13/p2-ledi --out runs/s13/p2-ledi.f32.safetensors \
  >> runs/s13/p2-ledi.log 2>&1 &
RAYON_NUM_THREADS=1 nice -n 10 $BIN train $COMMON --preset small --prior gaussian \
  --run-dir runs/s13/p2-gauss --out runs/s13/p2-gauss.f32.safetensors >> runs/s13/p2-gauss.log 2>&1 &
wait
