#!/usr/bin/env bash
# Session 13: the x-prediction experiment's two from-scratch image flows (5000 FM steps, f16)
# and the prior-noise-scale 0.5 fine-tune, 4 Midpoint steps, five sampling seeds, one thread each.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.dev/lediflow-xpred}
mkdir -p runs/s13/eval
ev() { # name extra-args
  local m=$1; shift
  [ -e runs/s13/eval/$m.f16.safetensors ] ||
    $BIN convert --fp16 --model runs/s13/$m.f32.safetensors --out runs/s13/eval/$m.f16.safetensors
  env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 "$@" \
    --model runs/s13/eval/$m.f16.safetensors --json runs/s13/eval/$m.json > runs/s13/eval/$m.log 2>&1
}
case ${WHAT:-xp} in
  xp) ev xp-data & ev xp-vel & wait ;;
  s05) ev ledi-s05 --prior-scale 0.5 ;;
esac
