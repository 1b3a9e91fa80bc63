#!/usr/bin/env bash
# Class-conditional quality of a class-conditional model pair, scored against the 518 held-out tiles of
# `--dcss --whole --angband` (needs Debian's crawl-tiles-data, angband-data and angband), five
# sampling seeds per point, Midpoint, each model on the time grid its file recommends:
# - <model>-classes.{md,json}: every class in its held-out share (`eval --by-class`) at 4, 8 and
#   32 NFE, with the per-class nearest-class accuracy;
# - <model>-guidance.{md,json}: guidance 1.5, 2 and 3 at 8 NFE over three seeds (guidance 1 is
#   the 8-NFE row of <model>-classes);
# - ledi-prior-only.{md,json}: LeDiFlow with only its latent flow given the class
#   (`--no-image-flow-class`), guidance 1 and 2 at 8 NFE over three seeds: what conditioning the
#   image flow adds;
# - <model>-unconditional.{md,json}: samples with no class at 4, 8 and 32 NFE (the main job);
#   with PREVIOUS=DIR (a folder holding other dcss-small-{ledi,gaussian}.safetensors, e.g. the
#   unconditional pair shipped until 2026-12-08: `git show 19166bf:models/dcss-small-ledi.safetensors`),
#   the same for those files: previous-<model>.{md,json};
# - docs/classes/<class>-{ledi,gaussian}.png: 64 samples of each class at 8 NFE, guidance 2,
#   seed 0, and (with ledi) docs/classes/<class>-real.png: 64 held-out tiles of that class.
#
# Usage: bench/classes/run.sh [ledi|gaussian ...]   (default: both; LEDIFLOW_BIN: the binary;
# MODELS: the folder of the class-conditional dcss-small-{ledi,gaussian}.safetensors, default
# models)
# The evaluations are single-threaded; two models run side by side on a 2-core machine with
#     RAYON_NUM_THREADS=1 bench/classes/run.sh ledi & RAYON_NUM_THREADS=1 bench/classes/run.sh gaussian
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
OUT=bench/classes
SEEDS=${SEEDS:-0,1,2,3,4}
GUIDANCE_SEEDS=${GUIDANCE_SEEDS:-0,1,2}
MODELS=${MODELS:-models}
DATA="--dcss --whole --angband"
CLASSES="floor wall feature item creature"
mkdir -p docs/classes
score() { # file out-name seeds eval-flags...
    local file=$1 name=$2 seeds=$3
    shift 3
    # shellcheck disable=SC2086 # DATA is a list of flags
    "$BIN" eval --model "$file" $DATA --seed "$seeds" "$@" --json "$OUT/$name.json" > "$OUT/$name.md" 2> /dev/null
}
real_sheets() { # 64 held-out tiles of each class (once, with the ledi run: both share the data)
    local real
    real=$(mktemp -d)
    # shellcheck disable=SC2086
    "$BIN" data $DATA --held-out --by-class "$real" --per-class 64 --columns 8 --sheet "$real/all.png" 2> /dev/null
    for c in $CLASSES; do cp "$real/$c.png" "docs/classes/$c-real.png"; done
    rm -rf "$real"
}
for m in "${@:-ledi gaussian}"; do
    for m in $m; do
        file=$MODELS/dcss-small-$m.safetensors
        for c in $CLASSES; do
            "$BIN" sample --model "$file" --class "$c" --guidance 2 --count 64 --steps 4 --seed 0 --columns 8 \
                --checker --out "docs/classes/$c-$m.png" 2> /dev/null
        done
        score "$file" "$m-classes" "$SEEDS" --by-class --steps 2,4,16
        score "$file" "$m-guidance" "$GUIDANCE_SEEDS" --by-class --steps 4 --guidance 1.5,2,3
        if [ "$m" = ledi ]; then
            score "$file" ledi-prior-only "$GUIDANCE_SEEDS" --by-class --no-image-flow-class --steps 4 --guidance 1,2
            real_sheets
        fi
        score "$file" "$m-unconditional" "$SEEDS" --steps 2,4,16
        if [ -n "${PREVIOUS:-}" ]; then
            score "$PREVIOUS/dcss-small-$m.safetensors" "previous-$m" "$SEEDS" --steps 2,4,16
        fi
    done
done
echo "wrote $OUT and docs/classes"
