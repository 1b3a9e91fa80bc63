#!/bin/bash
# Session 17: a learning-rate cool-down for the latent flow (new `retrain-latent --decay-steps`),
# against a control with the shipped latent flow's recipe (30000 steps, batch 256, lr 1e-3, seed 0,
# no decay), both retrained on the shipped LeDiFlow file's encoder (runs/s17/ledi.f32.safetensors,
# the f32 file models/dcss-small-ledi.safetensors was converted from). One thread each, side by side.
# Then: Midpoint 8 NFE, five seeds, as bench/sweep/s17/finish.sh.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=runs/s17/ledi.f32.safetensors
O=runs/s17/lat
mkdir -p $O
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 30000 --decay-steps 10000 \
  --out $O/decay.f32.safetensors > $O/decay.log 2>&1 &
RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 30000 \
  --out $O/control.f32.safetensors > $O/control.log 2>&1 &
wait
for v in decay control; do
  $BIN convert --fp16 --model $O/$v.f32.safetensors --out $O/$v.f16.safetensors
  RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 --time-shift 1 \
    --model $O/$v.f16.safetensors --json $O/$v-1-s4.json > $O/$v-1-s4.eval.log 2>&1 &
done
wait
