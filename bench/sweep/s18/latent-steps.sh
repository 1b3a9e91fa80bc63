#!/bin/bash
# Session 18: how many Midpoint steps does the latent flow need? The shipped file at 8 NFE of the
# image flow (Midpoint 4 steps, seeds 0-4) with 2, 4 and 64 latent-flow steps (default 16:
# bench/sweep/s18/eval/final-s0-1-s4.json); one thread each, two at a time.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
O=${O:-runs/s18}
run() {
  RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 --time-shift 1 --latent-steps $1 \
    --model models/dcss-small-ledi.safetensors --json $O/lsteps$1.json > $O/lsteps$1.log 2>&1
}
run 2 & run 64 &
wait
run 4
