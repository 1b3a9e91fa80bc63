#!/bin/bash
# Session 13: does the flow-time distribution of FM training matter? Both shipped image flows
# get 4000 more steps with session 12's cool-down recipe (fresh Adam, lr 3e-4 after the 200-step
# warm-up, decayed linearly to 0, flips), either with uniform t (the control: the same recipe as
# session 12, repeated) or with SD3's logit-normal t (mean 0, std 1). From the session-12 f32
# files (runs/s12/*-cool.f32.safetensors), one thread each.
#   TS=uniform|logit [WHO=ledi|gauss] bash bench/sweep/s13/ts.sh
BIN=${BIN:-.dev/lediflow-s13}
case ${TS:?} in
  uniform) SAMPLING='{"kind":"uniform"}' ;;
  logit) SAMPLING='{"kind":"logit_normal","mean":0.0,"std":1.0}' ;;
esac
for who in ${WHO:-ledi gauss}; do
  RAYON_NUM_THREADS=1 $BIN train --init runs/s12/$who-cool.f32.safetensors --dcss --batch 32 \
    --steps-aux 0 --steps-latent 0 --steps-fm 4000 --seed 15 --hflip --checkpoint-every 500 \
    --set train.fm.lr=3e-4 --set train.fm.decay_steps=4000 --set "train.time_sampling=$SAMPLING" \
    --run-dir runs/s13/$who-$TS --out runs/s13/$who-$TS.f32.safetensors > runs/s13/$who-$TS.log 2>&1 &
done
wait
