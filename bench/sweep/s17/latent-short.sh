#!/bin/bash
# Session 17: does the latent flow generalise better when stopped early? The shipped recipe
# (bench/sweep/s17/latent.sh's control: 30000 steps, batch 256, lr 1e-3, seed 0) cut to 10000 and
# 5000 steps, on the same encoder; one thread each, side by side; Midpoint 8 NFE, five seeds.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=runs/s17/ledi.f32.safetensors
O=runs/s17/lat
mkdir -p $O
for n in 10000 5000; do
  RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps $n \
    --out $O/steps$n.f32.safetensors > $O/steps$n.log 2>&1 &
done
wait
for n in 10000 5000; do
  $BIN convert --fp16 --model $O/steps$n.f32.safetensors --out $O/steps$n.f16.safetensors
  RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 --time-shift 1 \
    --model $O/steps$n.f16.safetensors --json $O/steps$n-1-s4.json > $O/steps$n-1-s4.eval.log 2>&1 &
done
wait
