#!/usr/bin/env bash
# Builds the Python package as a wheel that carries the shared library, so that after
#     pip install target/wheels/lediflow-*.whl
# `import lediflow` works from any folder with no environment variable.
#   scripts/python-wheel.sh [BUILD_DIR]   (default target/release, built first if missing)
# Writes target/wheels/lediflow-VERSION-py3-none-PLATFORM.whl and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BUILD=${1:-$TARGET/release}
LIB=liblediflow.so
[ "$(uname -s)" = Darwin ] && LIB=liblediflow.dylib
if [ ! -f "$BUILD/$LIB" ]; then
    [ "$BUILD" = "$TARGET/release" ] || { echo "$BUILD/$LIB is missing" >&2; exit 1; }
    cargo build --release --lib >&2
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -r bindings/python/pyproject.toml bindings/python/setup.py bindings/python/lediflow "$STAGE/"
rm -rf "$STAGE/lediflow/__pycache__"
cp "$BUILD/$LIB" "$STAGE/lediflow/"
mkdir -p "$TARGET/wheels"
OUTDIR=$(cd "$TARGET/wheels" && pwd)
# With setuptools and its wheel builder installed, build with them (no download); otherwise pip's
# build isolation fetches them from PyPI.
if python3 -c "import setuptools; from wheel.bdist_wheel import bdist_wheel" 2>/dev/null \
    || python3 -c "import setuptools.command.bdist_wheel" 2>/dev/null; then
    python3 -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$OUTDIR" "$STAGE" >&2
else
    python3 -m pip wheel --quiet --no-deps --wheel-dir "$OUTDIR" "$STAGE" >&2
fi
ls -t "$OUTDIR"/lediflow-*.whl | head -1
