#!/bin/bash
# Session 18: score the final latent flows with session 16's protocol and pair them with the
# session-17 reports of the shipped file (bench/sweep/s17/eval/): seeds 0 and 1 at 8 NFE, seed 0
# also at 2 and 32 NFE.
set -u
cd "$(dirname "$0")/../../.."
O=${O:-runs/s18}
E=bench/sweep/s18/eval
bash bench/sweep/s18/eval.sh 4 final-s0 final-s1
bash bench/sweep/s18/eval.sh "16 1" final-s0
mkdir -p $E
cp $O/final-s*-1-s*.json $E/
for f in $O/final-s*-1-s*.eval.log; do cp $f $E/$(basename $f .eval.log).log; done
{
  for run in final-s0 final-s1; do
    echo "== 8 NFE: shipped (A) vs $run (B)"
    python3 bench/sweep/paired.py bench/sweep/s17/eval/ledi-1-s4.json $E/$run-1-s4.json
  done
  for st in 1 16; do
    echo "== $((2 * st)) NFE: shipped (A) vs final-s0 (B)"
    python3 bench/sweep/paired.py bench/sweep/s17/eval/ledi-1-s$st.json $E/final-s0-1-s$st.json
  done
} > $E/paired.txt
cat $E/paired.txt
