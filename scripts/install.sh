#!/usr/bin/env bash
# Installs the library, header, C++ wrapper and a pkg-config file under PREFIX:
#   cargo build --release --lib && scripts/install.sh /usr/local
# then: cc app.c $(pkg-config --cflags --libs lediflow)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:?usage: scripts/install.sh PREFIX [BUILD_DIR (default target/release)]}
BUILD=${2:-target/release}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for f in liblediflow.so liblediflow.a; do
    [ -f "$BUILD/$f" ] || { echo "$BUILD/$f is missing: run cargo build --release --lib" >&2; exit 1; }
done
install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 644 "$BUILD/liblediflow.a" "$PREFIX/lib/"
install -m 755 "$BUILD/liblediflow.so" "$PREFIX/lib/liblediflow.so.$VERSION"
ln -sf "liblediflow.so.$VERSION" "$PREFIX/lib/liblediflow.so"
install -m 644 include/lediflow.h bindings/cpp/lediflow.hpp "$PREFIX/include/"
cat > "$PREFIX/lib/pkgconfig/lediflow.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: lediflow
Description: LeDiFlow image generation (learned-prior flow matching) with a stable C ABI
Version: $VERSION
Libs: -L\${libdir} -llediflow
Libs.private: -lpthread -ldl -lm -lrt
Cflags: -I\${includedir}
PC
echo "installed lediflow $VERSION under $PREFIX"
