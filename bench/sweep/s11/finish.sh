#!/usr/bin/env bash
# Session 11: evaluate a finished f32 model file: f16 copy, stage grid (learned prior), 4-step grid,
# eval with Midpoint at STEPS_LIST steps.  usage: finish.sh IN.f32.safetensors NAME
set -euo pipefail
cd /work/main
BIN=${BIN:-.dev/lediflow-s10b}
IN=$1; NAME=$2; OUT=runs/s11/eval; mkdir -p $OUT
$BIN convert --fp16 --model $IN --out $OUT/$NAME.f16.safetensors
if [ "${STAGE:-1}" = 1 ]; then target/release/examples/stage_grid $OUT/$NAME.f16.safetensors $OUT/$NAME-stage.png 4 2>&1 | tail -2; fi
RAYON_NUM_THREADS=1 $BIN sample --model $OUT/$NAME.f16.safetensors --count 64 --steps 4 --solver midpoint --seed 0 --checker --out $OUT/$NAME-midpoint4.png
RAYON_NUM_THREADS=1 $BIN eval --model $OUT/$NAME.f16.safetensors --dcss --solver midpoint --steps ${STEPS_LIST:-1,2,4,8,16} \
  --json $OUT/$NAME-midpoint.json 2>&1 | tee $OUT/$NAME-midpoint.log
