#!/usr/bin/env bash
# Regenerates include/lediflow.h from the crate's extern "C" layer (src/capi) with cbindgen (`cargo install cbindgen`), or with
# --check fails if the committed header differs from what cbindgen generates.
set -euo pipefail
cd "$(dirname "$0")/.."
out=include/lediflow.h
[ "${1:-}" = "--check" ] && out=target/lediflow.h.generated
mkdir -p "$(dirname "$out")"
cbindgen --quiet --config cbindgen.toml --crate lediflow --output "$out"
if [ "${1:-}" = "--check" ]; then
    if ! diff -u include/lediflow.h "$out"; then
        echo "include/lediflow.h is stale: run scripts/header.sh and commit it" >&2
        exit 1
    fi
fi
