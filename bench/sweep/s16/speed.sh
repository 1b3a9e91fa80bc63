#!/bin/bash
# Session 16: sampling speed of the shipped files with the per-pixel head against the session-12
# files (commit d3902a0) without it: `lediflow bench`, one thread, 4 Midpoint steps, batches
# 1/16/64, the four files one after the other in one run, nothing else running.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
O=bench/sweep/s16/speed
T=$(mktemp -d)
git show d3902a0:models/dcss-small-ledi.safetensors > $T/ledi-s12.safetensors
git show d3902a0:models/dcss-small-gaussian.safetensors > $T/gauss-s12.safetensors
for m in ledi-s12=$T/ledi-s12.safetensors ledi-s16=models/dcss-small-ledi.safetensors \
         gauss-s12=$T/gauss-s12.safetensors gauss-s16=models/dcss-small-gaussian.safetensors; do
  RAYON_NUM_THREADS=1 $BIN bench --model ${m#*=} --batches 1,16,64 --repeats 7 --json $O/${m%%=*}.json > $O/${m%%=*}.md
done
rm -rf $T
