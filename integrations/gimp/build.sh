#!/usr/bin/env bash
# Builds the lediflow GIMP 2.10 plug-in and installs it into a GIMP plug-ins folder:
#   integrations/gimp/build.sh PLUGINS_DIR
# for example ~/.config/GIMP/2.10/plug-ins. It installs PLUGINS_DIR/lediflow/lediflow (the
# plug-in), lib/liblediflow.so beside it (found through the plug-in's rpath, so no environment
# variable is needed) and models/dcss-small-ledi.safetensors (the model an empty model argument
# means). Needs gcc, pkg-config and libgimp2.0-dev (Debian); the library comes from
# LEDIFLOW_LIB_DIR, or target/release (built with cargo if missing).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PLUGINS_DIR" >&2; exit 2; }
DEST=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB_DIR=${LEDIFLOW_LIB_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
if [ ! -f "$LIB_DIR/liblediflow.so" ]; then
    (cd "$ROOT" && cargo build --release --lib)
fi
pkg-config --exists gimpui-2.0 || { echo "gimp-2.0 development files are missing (apt-get install libgimp2.0-dev)" >&2; exit 1; }

mkdir -p "$DEST/lediflow/lib" "$DEST/lediflow/models"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2046
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wno-deprecated-declarations -I"$ROOT/include" \
    "$HERE/lediflow-gimp.c" -o "$TMP/lediflow" \
    $(pkg-config --cflags --libs gimpui-2.0 gimp-2.0) -L"$LIB_DIR" -llediflow -lm \
    -Wl,-rpath,'$ORIGIN/lib'
# The library and model are plain files (GIMP would try to run anything executable it finds).
install -m 644 "$LIB_DIR/liblediflow.so" "$DEST/lediflow/lib/liblediflow.so"
install -m 644 "$ROOT/models/dcss-small-ledi.safetensors" "$DEST/lediflow/models/"
install -m 755 "$TMP/lediflow" "$DEST/lediflow/lediflow"
echo "installed $DEST/lediflow/lediflow"
