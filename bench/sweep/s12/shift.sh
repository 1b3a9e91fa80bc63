#!/usr/bin/env bash
# Session 12: the shipped (cooled) files at 4 Midpoint steps (8 NFE) on shifted solver grids
# (--time-shift), five sampling seeds each, plus 2 and 16 steps. Equal-step rows at 8 and 32 NFE
# for the baseline: bench/sweep/s12/eval/ (the cool-down evaluation). One thread per
# run, two runs side by side. (Measured with a development binary that read the shift from an
# environment variable; `eval --time-shift` is the same grid, flow::time_grid.)
set -euo pipefail
cd /work/main
BIN=${BIN:-target/release/lediflow}
run() { env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps $3 --seed 0,1,2,3,4 --time-shift $2 \
  --model models/dcss-small-$1.safetensors --json bench/sweep/s12/shift/$1-$2-s$3.json > bench/sweep/s12/shift/$1-$2-s$3.log 2>&1; }
(run ledi 1 2; run ledi 0.5 4; run ledi 1 4; run ledi 1.5 4; run ledi 2 4; run ledi 2 16) &
(run gaussian 1 2; run gaussian 3 2; run gaussian 0.5 4; run gaussian 2 4; run gaussian 3 4; run gaussian 5 4; run gaussian 3 16) &
wait
