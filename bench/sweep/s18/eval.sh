#!/bin/bash
# Session 18: convert latent-flow candidates to fp16 (as shipped) and score them with session
# 16's protocol (Midpoint, seeds 0-4, time shift 1) at the step counts given; two at a time,
# one thread each.  Usage: eval.sh "4" name1 name2 ...   (files runs/s18/NAME.f32.safetensors)
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
O=${O:-runs/s18}
STEPS=$1; shift
for name in "$@"; do
  [ -f $O/$name.f16.safetensors ] || $BIN convert --fp16 --model $O/$name.f32.safetensors --out $O/$name.f16.safetensors
done
jobs_=()
for st in $STEPS; do for name in "$@"; do jobs_+=("$name $st"); done; done
run() {
  set -- $1
  RAYON_NUM_THREADS=1 $BIN eval --dcss --solver midpoint --steps $2 --seed 0,1,2,3,4 --time-shift 1 \
    --model $O/$1.f16.safetensors --json $O/$1-1-s$2.json > $O/$1-1-s$2.eval.log 2>&1
}
i=0
for j in "${jobs_[@]}"; do
  run "$j" &
  i=$((i + 1))
  if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
