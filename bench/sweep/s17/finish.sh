#!/usr/bin/env bash
# Session 17: evaluate bench/sweep/s17/train.sh's runs (27000 FM steps in all) exactly as
# session 16's (bench/sweep/s15/finish.sh: f16, Midpoint, five sampling seeds, one thread per eval,
# two evals side by side; LeDiFlow at shift 1, the baseline at shift 3 and at shift 1 for 8 NFE),
# then paired-seed comparisons against session 16's reports (bench/sweep/s16/eval/, the files
# shipped until now), the seed-0 sample grids and the stage grid. Reports go to runs/s17/eval/.
#   bash bench/sweep/s17/finish.sh
#   ONLY=gauss bash bench/sweep/s17/finish.sh   # one model's evaluations, while the other trains
# Evaluations are skipped when done, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
SRC=runs/s17/
O=runs/s17/eval
REF=bench/sweep/s16/eval
mkdir -p $O
for w in ${ONLY:-ledi gauss}; do
  [ -e $SRC$w.f32.safetensors ] || { echo "$SRC$w.f32.safetensors missing: training not done" >&2; exit 1; }
  [ -e $O/$w.f16.safetensors ] || $BIN convert --fp16 --model $SRC$w.f32.safetensors --out $O/$w.f16.safetensors
done
ev() { # model time-shift solver-steps: $O/MODEL-SHIFT-sSTEPS.{json,log}, skipped if done
  local j=$O/$1-$2-s$3
  [ -e $j.json ] || env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps $3 --seed 0,1,2,3,4 \
    --time-shift $2 --model $O/$1.f16.safetensors --json $j.json > $j.log 2>&1
}
evs_ledi() { ev ledi 1 4; ev ledi 1 1; ev ledi 1 16; }
evs_gauss() { ev gauss 3 4; ev gauss 1 4; ev gauss 3 1; ev gauss 3 16; }
if [ -n "${ONLY:-}" ]; then evs_$ONLY; exit 0; fi
evs_ledi &
evs_gauss &
wait
{
  for j in ledi-1-s4 ledi-1-s1 ledi-1-s16 gauss-3-s4 gauss-1-s4 gauss-3-s1 gauss-3-s16; do
    echo "== $REF/$j.json -> $O/$j.json"
    python3 bench/sweep/paired.py $REF/$j.json $O/$j.json
  done
  for n in 1 4 16; do
    echo "== new LeDiFlow (A) against the new baseline at shift 3 (B), $((2 * n)) NFE"
    python3 bench/sweep/paired.py $O/ledi-1-s$n.json $O/gauss-3-s$n.json
  done
} | tee $O/paired.txt
for w in ledi gauss; do
  shift=1; [ $w = gauss ] && shift=3
  $BIN sample --model $O/$w.f16.safetensors --count 64 --steps 4 --solver midpoint --seed 0 --checker \
    --time-shift $shift --out $O/samples-$w-midpoint4.png
done
cargo run --release --example stage_grid -- $O/ledi.f16.safetensors $O/ledi-stage.png
