#!/usr/bin/env bash
# bf16 against fp32 on the shipped model files (needs a CPU with AVX512-BF16):
#  - fidelity.md: the same seeds' 8-bit images in both precisions, byte by byte
#    (examples/precision: 256 unconditional images and 64 per class, five seeds, 8 NFE);
#  - <ledi|gaussian>-<fp32|bf16>.{md,json,log}: held-out quality without a class at 8 NFE
#    (4 Midpoint steps), five seeds, `--dcss --whole --angband` (needs Debian's crawl-tiles-data,
#    angband-data and angband);
#  - <ledi|gaussian>-classes-<fp32|bf16>.{md,json,log}: the same by class (guidance 1).
# Then `python3 bench/precision/table.py` prints the comparison in BENCHMARKS.md.
#
# Usage: bench/precision/run.sh [ledi|gaussian ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
EXAMPLE=${PRECISION_EXAMPLE:-target/release/examples/precision}
OUT=bench/precision
SEEDS=${SEEDS:-0,1,2,3,4}
models=("${@:-ledi gaussian}")
# shellcheck disable=SC2068 # models is a list of names
files=(); for m in ${models[@]}; do files+=("models/dcss-small-$m.safetensors"); done
"$EXAMPLE" --count 256 --steps 4 --seeds "$SEEDS" "${files[@]}" > "$OUT/fidelity.md"
# shellcheck disable=SC2068
for m in ${models[@]}; do
    for p in fp32 bf16; do
        "$BIN" eval --model "models/dcss-small-$m.safetensors" --dcss --whole --angband --solver midpoint --steps 4 \
            --seed "$SEEDS" --precision "$p" --json "$OUT/$m-$p.json" > "$OUT/$m-$p.md" 2> "$OUT/$m-$p.log"
        "$BIN" eval --model "models/dcss-small-$m.safetensors" --dcss --whole --angband --solver midpoint --steps 4 \
            --seed "$SEEDS" --precision "$p" --by-class --json "$OUT/$m-classes-$p.json" \
            > "$OUT/$m-classes-$p.md" 2> "$OUT/$m-classes-$p.log"
    done
done
