#!/usr/bin/env bash
# Installs the lediflow Blender add-on into a Blender add-ons folder:
#   integrations/blender/build.sh ADDONS_DIR
# for example ~/.config/blender/3.4/scripts/addons. It installs ADDONS_DIR/lediflow_blender/ with
# the Python bindings (lediflow/), the shared library inside them (found there first, so no
# environment variable is needed) and the shipped model (models/). Blender then lists "lediflow"
# under Preferences > Add-ons. The library comes from LEDIFLOW_LIB_DIR, or target/release (built
# with cargo if missing). Needs numpy in Blender's Python (Debian: python3-numpy).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 ADDONS_DIR" >&2; exit 2; }
DEST=$1/lediflow_blender
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB_DIR=${LEDIFLOW_LIB_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
if [ ! -f "$LIB_DIR/liblediflow.so" ]; then
    (cd "$ROOT" && cargo build --release --lib)
fi
rm -rf "$DEST"
mkdir -p "$DEST/lediflow" "$DEST/models"
install -m 644 "$HERE/lediflow_blender/__init__.py" "$DEST/"
install -m 644 "$ROOT/bindings/python/lediflow/__init__.py" "$DEST/lediflow/"
install -m 755 "$LIB_DIR/liblediflow.so" "$DEST/lediflow/liblediflow.so"
install -m 644 "$ROOT/models/dcss-small-ledi.safetensors" "$DEST/models/"
echo "installed $DEST"
