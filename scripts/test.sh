#!/usr/bin/env bash
# Every test of the project, as CI runs it (after .ci/run installed the tools):
# Rust unit/integration/doc tests, the generated header's freshness, the C/C++ ABI tests with
# sanitizers, the static library, the pkg-config install, the Python binding's pytest and its wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the non-Rust tests need, installed on first use.
command -v cbindgen >/dev/null || cargo install --locked cbindgen --version "^0.29"
python3 -c "import numpy, pytest" 2>/dev/null || python3 -m pip install --quiet numpy pytest
# The wheel test makes a virtual environment (Debian ships ensurepip in python3-venv).
if ! python3 -c "import ensurepip" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv
    else echo "the Python wheel test needs python3-venv (sudo apt-get install python3-venv)" >&2; exit 1; fi
fi

TARGET=${CARGO_TARGET_DIR:-target}

echo "== Rust tests"
cargo test --all-targets
cargo test --doc

echo "== include/lediflow.h is what cbindgen generates from src/capi"
bash scripts/header.sh --check

echo "== C and C++ ABI tests"
cargo build --lib
bash tests/c/run.sh

echo "== pkg-config install"
PREFIX="$(mkdir -p "$TARGET" && cd "$TARGET" && pwd)/pkgconfig-test"
rm -rf "$PREFIX"
bash scripts/install.sh "$PREFIX" "$TARGET/debug" >/dev/null
PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" gcc -std=c99 -Wall -Werror -Iexamples/c examples/c/sample_grid.c \
    $(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs lediflow) \
    -Wl,-rpath,"$PREFIX/lib" -o "$PREFIX/sample_grid"
"$PREFIX/sample_grid" models/dcss-small-ledi.safetensors "$PREFIX/grid.png" 4 2 >/dev/null

echo "== C++ example"
g++ -std=c++17 -Wall -Wextra -Werror -Iinclude -Ibindings/cpp -Iexamples/c examples/cpp/sample_grid.cpp \
    -L"$TARGET/debug" -llediflow -Wl,-rpath,"$(cd "$TARGET/debug" && pwd)" -o "$TARGET/abi-tests/sample_grid_cpp"
"$TARGET/abi-tests/sample_grid_cpp" models/dcss-small-ledi.safetensors "$TARGET/abi-tests/grid.png" 4 >/dev/null

echo "== Python binding"
PYTHONPATH=bindings/python python3 -m pytest -q bindings/python/tests
PYTHONPATH=bindings/python python3 examples/python/sample_grid.py models/dcss-small-ledi.safetensors \
    "$TARGET/python-grid.png" --count 4 --steps 2 >/dev/null

echo "== Python wheel (the library inside the package, installed into a fresh venv)"
bash bindings/python/tests/test_wheel.sh "$TARGET/debug"

echo "== all tests passed"
