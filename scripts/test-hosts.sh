#!/usr/bin/env bash
# Every host integration's test, headless, installing the host where it is missing (Debian
# packages): the LÖVE demo (examples/love, LuaJIT FFI). Each compares what the host produced,
# byte for byte, with what the library gives for the same model, seed and parameters.
#   scripts/test-hosts.sh [LIBRARY_DIR]   (default target/debug, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
LIB_DIR=${1:-$TARGET/debug}
[ -f "$LIB_DIR/liblediflow.so" ] || cargo build --lib
need() { # command package
    command -v "$1" >/dev/null && return
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq "$2"
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq "$2"
    fi
}

echo "== LÖVE (examples/love)"
need love love
python3 tests/hosts/love_test.py "$LIB_DIR/liblediflow.so"

echo "== all host tests passed"
