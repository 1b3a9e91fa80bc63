#!/usr/bin/env bash
# Session 12: the cool-down candidates (f16, as they would ship) at Midpoint STEPS steps
# (default 4 = 8 NFE) over five sampling seeds, both priors side by side, one thread each.
set -euo pipefail
cd /work/main
BIN=.dev/lediflow-s12
STEPS=${STEPS:-4}
mkdir -p runs/s12/eval
for who in ledi gauss; do
  [ -e runs/s12/eval/$who.f16.safetensors ] ||
    $BIN convert --fp16 --model runs/s12/$who-cool.f32.safetensors --out runs/s12/eval/$who.f16.safetensors
done
run() { env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps $STEPS --seed 0,1,2,3,4 \
  --model runs/s12/eval/$1.f16.safetensors --json runs/s12/eval/$1-s$STEPS.json > runs/s12/eval/$1-s$STEPS.log 2>&1; }
run ledi & run gauss & wait
