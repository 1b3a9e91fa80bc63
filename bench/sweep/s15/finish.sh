#!/usr/bin/env bash
# Session 15: evaluate the two image flows with the time-modulated per-pixel head (written for
# bench/sweep/s14/full.sh's 27000-step runs, which were lost; session 16 ran it on
# bench/sweep/s16/train.sh's 15000-step runs) exactly as the session-12 files were (session 12,
# bench/sweep/s12/shift/ and eval/): f16, Midpoint, five sampling seeds, one thread per eval, two
# evals side by side. LeDiFlow on equal steps (shift 1) at 2, 8 and 32 NFE; the baseline on its
# recommended grid (shift 3) at 2, 8 and 32 NFE and on equal steps at 8 NFE. Then paired-seed
# comparisons against the session-12 files, the seed-0 sample grids (as in the README) and the stage
# grid. Reports go to runs/s15/ (copied into bench/sweep/s15/ when they are written up).
#
#   bash bench/sweep/s15/finish.sh          # needs runs/s14/full-{ledi,gauss}.f32.safetensors
#   SRC=runs/s16/ O=runs/s16/eval bash bench/sweep/s15/finish.sh   # session 16's runs (s16/train.sh)
#   ONLY=gauss ...  # only that model's evaluations (say while the other still trains); no comparisons
# The evaluations run in order of need (8 NFE first, 32 NFE last) and are skipped when done, so an
# interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
SRC=${SRC:-runs/s14/full-}
O=${O:-runs/s15}
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
S=bench/sweep/s12
pair() { echo "== $1 -> $2"; python3 bench/sweep/paired.py "$1" "$2"; }
{
  # (one Midpoint step: the grid is [0, 1] whatever the shift, so the session-12 files' equal-step
  # reports are the reference at 2 NFE)
  pair $S/shift/ledi-1-s4.json $O/ledi-1-s4.json
  pair $S/eval/ledi-s1.json $O/ledi-1-s1.json
  pair $S/eval/ledi-s16.json $O/ledi-1-s16.json
  pair $S/shift/gaussian-3-s4.json $O/gauss-3-s4.json
  pair $S/eval/gauss-s4.json $O/gauss-1-s4.json
  pair $S/eval/gauss-s1.json $O/gauss-3-s1.json
  pair $S/shift/gaussian-3-s16.json $O/gauss-3-s16.json
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
