#!/bin/bash
# Session 18: regularising the latent flow, judged by its flow loss on held-out latents
# (every 10th training image left out, --holdout-every 10; the validation split is only
# logged). The shipped recipe (batch 256, lr 1e-3, seed 0) with one change each, 12000 steps,
# best EMA weights kept; two at a time, one thread each.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s18}
run() {
  name=$1; shift
  RAYON_NUM_THREADS=1 $BIN retrain-latent --model $M --dcss --steps 12000 --seed 0 --holdout-every 10 --keep-best \
    --log $O/$name.csv --out $O/$name.f32.safetensors "$@" > $O/$name.log 2>&1
}
run reg-wd0.1 --weight-decay 0.1 &
run reg-wd1 --weight-decay 1 &
wait
run reg-h128b2 --hidden 128 --blocks 2 &
run reg-lr3e-4 --lr 3e-4 &
wait
