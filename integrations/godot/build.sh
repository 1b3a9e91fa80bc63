#!/usr/bin/env bash
# Builds the lediflow GDNative library for Godot 3 and installs it into a Godot project:
#   integrations/godot/build.sh PROJECT_DIR
# installs PROJECT_DIR/addons/lediflow/ with liblediflow_godot.so (the NativeScript class
# Lediflow), liblediflow.so beside it (found through the rpath), lediflow.gdnlib, lediflow.gdns,
# lediflow_worker.gd (runs calls on a Thread, with progress) and
# models/dcss-small-ledi.safetensors (what load_model("") loads). The GDNative C headers (Godot
# 3.2) come from the gdnative-sys crate on crates.io, fetched by cargo (GODOT_HEADERS=DIR uses
# another copy). The library comes from LEDIFLOW_LIB_DIR, or target/release (built with cargo if
# missing).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PROJECT_DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEST=$1/addons/lediflow
LIB_DIR=${LEDIFLOW_LIB_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
if [ ! -f "$LIB_DIR/liblediflow.so" ]; then
    (cd "$ROOT" && cargo build --release --lib)
fi
if [ -z "${GODOT_HEADERS:-}" ]; then
    manifest=$(cargo metadata --quiet --format-version 1 --manifest-path "$HERE/headers/Cargo.toml" |
        python3 -c 'import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "gdnative-sys"))')
    GODOT_HEADERS=$(dirname "$manifest")/godot_headers
fi
[ -f "$GODOT_HEADERS/gdnative_api_struct.gen.h" ] || { echo "no GDNative headers in $GODOT_HEADERS" >&2; exit 1; }

mkdir -p "$DEST/models"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
gcc -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Werror -Wno-unused-parameter \
    -I"$GODOT_HEADERS" -I"$ROOT/include" "$HERE/src/lediflow_godot.c" -o "$TMP/liblediflow_godot.so" \
    -L"$LIB_DIR" -llediflow -Wl,-rpath,'$ORIGIN'
install -m 755 "$TMP/liblediflow_godot.so" "$LIB_DIR/liblediflow.so" "$DEST/"
install -m 644 "$HERE/addon/lediflow.gdnlib" "$HERE/addon/lediflow.gdns" "$HERE/addon/lediflow_worker.gd" "$DEST/"
install -m 644 "$ROOT/models/dcss-small-ledi.safetensors" "$DEST/models/"
echo "installed $DEST"
