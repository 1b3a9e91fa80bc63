#!/usr/bin/env bash
# Session 11: 8-NFE Midpoint metrics over five sampling seeds for the session-5, session-10 (shipped)
# and session-11 LeDiFlow files and the session-10/11 baselines.
set -euo pipefail
cd /work/main
run() { env RAYON_NUM_THREADS=1 .dev/lediflow-s11 eval --dcss --solver midpoint --steps 4 --seed 0,1,2,3,4 \
  --model $1 --json runs/s11/seeds/$2.json > runs/s11/seeds/$2.log 2>&1; }
run runs/s11/s5-ledi.f16.safetensors s5-ledi & run models/dcss-small-ledi.safetensors s10-ledi & wait
run runs/s11/eval/ledi.f16.safetensors s11-ledi & run models/dcss-small-gaussian.safetensors s10-gauss & wait
run runs/s11/eval/gauss.f16.safetensors s11-gauss & run runs/s11/s5-gauss.f16.safetensors s5-gauss & wait
