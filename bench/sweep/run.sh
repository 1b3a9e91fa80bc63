#!/usr/bin/env bash
# NFE sweep of one model against the held-out DCSS tiles (issue 5): every solver over the NFE
# grid 1..64 (where the solver allows). Usage: bench/sweep/run.sh MODEL NAME
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=$1; NAME=$2
BIN=${LEDIFLOW_BIN:-target/release/lediflow}
sweep() { # solver steps
    "$BIN" eval --model "$MODEL" --dcss --solver "$1" --steps "$2" --json "bench/sweep/$NAME-$1.json" \
        > "bench/sweep/$NAME-$1.md" 2> "bench/sweep/$NAME-$1.log"
}
sweep euler 1,2,4,8,16,32,64
sweep midpoint 1,2,4,8,16,32
sweep heun 1,2,4,8,16,32
sweep rk4 1,2,4,8,16
