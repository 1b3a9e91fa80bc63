#!/usr/bin/env bash
# Seamless tiles and variations of the shipped model files (needs Debian's crawl-tiles-data):
# - seams.md: the seam ratio over 512 samples at 8 NFE (4 Midpoint steps), tileable and not; the
#   opaque samples (floor and wall tiles) scored against the opaque held-out tiles over five
#   seeds; docs/tiles-plain-tileable.png, four opaque samples repeated 3x3, plain and tileable;
# - <model>-{plain,tileable}.{md,json}: held-out quality at 8 NFE over five seeds, tileable and not;
# - variations.md: each held-out tile's variations against it and the other held-out tiles.
#
# Usage: bench/tiling/run.sh   (LEDIFLOW_BIN and EXAMPLES: where the binaries are)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
EXAMPLES=${EXAMPLES:-target/release/examples}
OUT=bench/tiling
SEEDS=${SEEDS:-0,1,2,3,4}
MODELS="models/dcss-small-ledi.safetensors models/dcss-small-gaussian.safetensors"
"$EXAMPLES/tiling" --count 512 --steps 4 --textures --preview docs/tiles-plain-tileable.png $MODELS > "$OUT/seams.md"
"$EXAMPLES/variations" --count 4 --steps 4 $MODELS > "$OUT/variations.md"
for name in ledi gaussian; do
    for mode in plain tileable; do
        flag=""; [ "$mode" = tileable ] && flag="--tileable"
        "$BIN" eval --model "models/dcss-small-$name.safetensors" --dcss --steps 4 --seed "$SEEDS" $flag \
            --json "$OUT/$name-$mode.json" > "$OUT/$name-$mode.md" 2> /dev/null
    done
done
echo "wrote $OUT and docs/tiles-plain-tileable.png"
