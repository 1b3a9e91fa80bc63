#!/usr/bin/env bash
# Session 13: the time-sampling candidates (f16, as they would ship) at 4 Midpoint steps (8 NFE)
# over five sampling seeds, each on its prior's best grid (LeDiFlow shift 1, baseline shift 3),
# one thread each. The shipped files' numbers with the same protocol and seeds are session 12's
# (bench/sweep/s12/eval/ledi-s4.json, bench/sweep/s12/shift/gaussian-3-s4.json).
#   TS=uniform|logit bash bench/sweep/s13/eval.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.dev/lediflow-s13}
mkdir -p runs/s13/eval
for who in ledi gauss; do
  [ -e runs/s13/eval/$who-$TS.f16.safetensors ] ||
    $BIN convert --fp16 --model runs/s13/$who-$TS.f32.safetensors --out runs/s13/eval/$who-$TS.f16.safetensors
done
run() { env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 --time-shift $2 \
  --model runs/s13/eval/$1-$TS.f16.safetensors --json runs/s13/eval/$1-$TS.json > runs/s13/eval/$1-$TS.log 2>&1; }
run ledi 1 & run gauss 3 & wait
