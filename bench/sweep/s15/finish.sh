#!/usr/bin/env bash
# Session 15: evaluate the two full-budget image flows with the time-modulated per-pixel head
# (bench/sweep/s14/full.sh, 27000 FM steps each) exactly as the shipped files were (session 12,
# bench/sweep/s12/shift/ and eval/): f16, Midpoint, five sampling seeds, one thread per eval, two
# evals side by side. LeDiFlow on equal steps (shift 1) at 2, 8 and 32 NFE; the baseline on its
# recommended grid (shift 3) at 2, 8 and 32 NFE and on equal steps at 8 NFE. Then paired-seed
# comparisons against the shipped files, the seed-0 sample grids (as in the README) and the stage
# grid. Reports go to runs/s15/ (copied into bench/sweep/s15/ when they are written up).
#
#   bash bench/sweep/s15/finish.sh          # needs runs/s14/full-{ledi,gauss}.f32.safetensors
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
O=runs/s15
mkdir -p $O
for w in ledi gauss; do
  [ -e runs/s14/full-$w.f32.safetensors ] || { echo "runs/s14/full-$w.f32.safetensors missing: full.sh not done" >&2; exit 1; }
  [ -e $O/$w.f16.safetensors ] || $BIN convert --fp16 --model runs/s14/full-$w.f32.safetensors --out $O/$w.f16.safetensors
done
ev() { # model time-shift solver-steps: runs/s15/MODEL-SHIFT-sSTEPS.{json,log}, skipped if done
  local j=$O/$1-$2-s$3
  [ -e $j.json ] || env RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps $3 --seed 0,1,2,3,4 \
    --time-shift $2 --model $O/$1.f16.safetensors --json $j.json > $j.log 2>&1
}
(ev ledi 1 4; ev ledi 1 1; ev ledi 1 16) &
(ev gauss 3 4; ev gauss 1 4; ev gauss 3 1; ev gauss 3 16) &
wait
S=bench/sweep/s12
pair() { echo "== $1 -> $2"; python3 bench/sweep/paired.py "$1" "$2"; }
{
  pair $S/shift/ledi-1-s4.json $O/ledi-1-s4.json
  pair $S/shift/ledi-1-s2.json $O/ledi-1-s1.json
  pair $S/eval/ledi-s16.json $O/ledi-1-s16.json
  pair $S/shift/gaussian-3-s4.json $O/gauss-3-s4.json
  pair $S/eval/gauss-s4.json $O/gauss-1-s4.json
  pair $S/shift/gaussian-3-s2.json $O/gauss-3-s1.json
  pair $S/shift/gaussian-3-s16.json $O/gauss-3-s16.json
  echo "== new LeDiFlow (A) against the new baseline at shift 3 (B), 8 NFE"
  python3 bench/sweep/paired.py $O/ledi-1-s4.json $O/gauss-3-s4.json
} | tee $O/paired.txt
for w in ledi gauss; do
  shift=1; [ $w = gauss ] && shift=3
  $BIN sample --model $O/$w.f16.safetensors --count 64 --steps 4 --solver midpoint --seed 0 --checker \
    --time-shift $shift --out $O/samples-$w-midpoint4.png
done
cargo run --release --example stage_grid -- $O/ledi.f16.safetensors $O/ledi-stage.png
