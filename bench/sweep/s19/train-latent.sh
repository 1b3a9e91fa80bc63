#!/bin/bash
# Session 19: `train`'s latent stage now steps on stored latents (train.latent_batch = 256,
# weight decay 1, 30000 steps by default). Does `train` alone reproduce session 18's
# retrain-latent recipe (validation-split held-out loss 1.489 at 30000 steps)? The latent flow
# of the session-17 file retrained from random weights (--fresh-latent) by `train`, without and
# with flips (--hflip adds the mirrors' latents to the stored ones), one thread each.
set -u
cd "$(dirname "$0")/../../.."
BIN=${BIN:-target/release/lediflow}
M=${M:-runs/s17/ledi.f32.safetensors}
O=${O:-runs/s19}
for flip in noflip hflip; do
  F=""; [ $flip = hflip ] && F="--hflip"
  RAYON_NUM_THREADS=1 $BIN train --init $M --fresh-latent --dcss --steps-aux 0 --steps-fm 0 $F \
    --run-dir $O/lat-$flip --out $O/lat-$flip.f32.safetensors > $O/lat-$flip.log 2>&1 &
done
wait
