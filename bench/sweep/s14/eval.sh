#!/usr/bin/env bash
# Session 14: evaluate the per-pixel-head models like session 13's (f16, 4 Midpoint steps,
# five sampling seeds, one thread each): `WHAT=ph bash bench/sweep/s14/eval.sh` for the
# from-scratch run (compare with bench/sweep/s13/eval/xp-vel.json), `WHAT=grow` for the two
# fine-tuned shipping candidates and `WHAT=full` for the full-budget ones (compare with the
# shipped files' session-12 numbers, bench/sweep/s12/eval/ledi-s4.json and
# bench/sweep/s12/shift/gaussian-3-s4.json; the baseline at its recommended time shift 3).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.dev/lediflow-s14c}
mkdir -p runs/s14/eval
ev() { # name extra-args (reports go to runs/s14/eval/$m$TAG.*)
  local m=$1; shift
  [ -e runs/s14/eval/$m.f16.safetensors ] ||
    $BIN convert --fp16 --model runs/s14/$m.f32.safetensors --out runs/s14/eval/$m.f16.safetensors
  env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 "$@" \
    --model runs/s14/eval/$m.f16.safetensors --json runs/s14/eval/$m${TAG:-}.json > runs/s14/eval/$m${TAG:-}.log 2>&1
}
case ${WHAT:-ph} in
  ph) ev ph32 ;;
  pht) ev ph32t ;;
  grow) ev grow-ledi & ev grow-gauss --time-shift 3 & wait ;;
  # the full-budget head models (full.sh), once both reached 27000 steps; the baseline on both
  # grids, to pick the time shift its file recommends
  full) ev full-ledi & TAG=-s3 ev full-gauss --time-shift 3 & wait; TAG=-s1 ev full-gauss --time-shift 1 ;;
esac
