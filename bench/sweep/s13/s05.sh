#!/bin/bash
# Session 13: a LeDiFlow image flow trained on a narrower prior draw, x0 = mu_P + 0.5 sigma_P eps
# (train.prior_noise_scale 0.5; sampled with --prior-scale 0.5 to match): 4000 FM steps from the
# session-12 f32 file with the same recipe as ts.sh's uniform control (which has s = 1).
BIN=${BIN:-.dev/lediflow-s13}
RAYON_NUM_THREADS=1 $BIN train --init runs/s12/ledi-cool.f32.safetensors --dcss --batch 32 \
  --steps-aux 0 --steps-latent 0 --steps-fm 4000 --seed 15 --hflip --checkpoint-every 500 \
  --set train.fm.lr=3e-4 --set train.fm.decay_steps=4000 --set train.prior_noise_scale=0.5 \
  --run-dir runs/s13/ledi-s05 --out runs/s13/ledi-s05.f32.safetensors > runs/s13/ledi-s05.log 2>&1
