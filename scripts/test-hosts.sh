#!/usr/bin/env bash
# Every host integration's test, headless, installing the host where it is missing (Debian
# packages): the LÖVE demo (examples/love, LuaJIT FFI), the GIMP 2.10 plug-in
# (integrations/gimp), the Godot 3 GDNative add-on (integrations/godot) and the Blender 3.4 add-on
# (integrations/blender). Each builds and installs the integration with its build.sh, drives the
# host from its own scripting and compares what the host produced, byte for byte, with what the
# library gives for the same model, seed and parameters.
#   scripts/test-hosts.sh [LIBRARY_DIR]   (default target/debug, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
LIB_DIR=${1:-$TARGET/debug}
[ -f "$LIB_DIR/liblediflow.so" ] || cargo build --lib
# The CLI trains the tiny class-conditional model some host tests use.
if [ ! -x "$LIB_DIR/lediflow" ]; then
    case "$LIB_DIR" in */release) cargo build --release --bin lediflow ;; *) cargo build --bin lediflow ;; esac
fi
export LEDIFLOW_CLI=$(cd "$LIB_DIR" && pwd)/lediflow
updated=""
need() { # check-command packages...
    local check=$1
    shift
    eval "$check" >/dev/null 2>&1 && return
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

echo "== LÖVE (examples/love)"
need "command -v love" love
python3 tests/hosts/love_test.py "$LIB_DIR/liblediflow.so"

echo "== GIMP (integrations/gimp)"
need "command -v gimp-console-2.10 && pkg-config --exists gimpui-2.0" gimp libgimp2.0-dev
need "command -v xvfb-run && command -v xdotool" xvfb xdotool  # the interactive dialog's test
python3 tests/hosts/gimp_test.py "$LIB_DIR"

echo "== Godot (integrations/godot)"
need "command -v godot3-server" godot3-server
python3 tests/hosts/godot_test.py "$LIB_DIR"

echo "== Blender (integrations/blender)"
need "command -v blender && dpkg -s python3-numpy" blender python3-numpy  # Blender's Python uses Debian's numpy
python3 tests/hosts/blender_test.py "$LIB_DIR"

echo "== all host tests passed"
