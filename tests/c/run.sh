#!/usr/bin/env bash
# C ABI tests (run by scripts/test.sh): the header alone as C99 and as C++17, the test program
# built with -Wall -Wextra -Werror and AddressSanitizer/UBSan against the shared library, eight
# threads on one model under ThreadSanitizer, 1000 load/sample/free cycles (resident memory
# measured plain, leaks under LeakSanitizer), the static library linked into a C program, and the
# C++ wrapper's test. CYCLES=N runs N cycles instead of 1000.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
LIB=${LEDIFLOW_LIB_DIR:-$TARGET/debug}
OUT=$TARGET/abi-tests
mkdir -p "$OUT"
MODELS="models/dcss-small-ledi.safetensors models/dcss-small-gaussian.safetensors"
WARN="-Wall -Wextra -Werror"

echo "-- header alone: C99 and C++17"
printf '#include "lediflow.h"\nint main(void) { return ldf_abi_version() == LDF_ABI_VERSION ? 0 : 1; }\n' > "$OUT/alone.c"
gcc -std=c99 -pedantic $WARN -Iinclude -c "$OUT/alone.c" -o "$OUT/alone_c.o"
g++ -std=c++17 -pedantic $WARN -Iinclude -x c++ -c "$OUT/alone.c" -o "$OUT/alone_cpp.o"
g++ -std=c++17 -pedantic $WARN -Iinclude -Ibindings/cpp -x c++ -fsyntax-only - <<<'#include "lediflow.hpp"'

echo "-- abi_test (ASan + UBSan, shared library)"
gcc -std=c11 $WARN -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -Iinclude tests/c/abi_test.c -L"$LIB" -llediflow -lpthread -lm -Wl,-rpath,"$(cd "$LIB" && pwd)" -o "$OUT/abi_test"
# Leak checking is on: a model, token or message the library leaked would fail the test.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "$OUT/abi_test" $MODELS

echo "-- threads_test (ThreadSanitizer, 8 threads on one model)"
gcc -std=c11 $WARN -g -fsanitize=thread -Iinclude tests/c/threads_test.c -L"$LIB" -llediflow -lpthread \
    -Wl,-rpath,"$(cd "$LIB" && pwd)" -o "$OUT/threads_test"
# The library's Rust code is not instrumented (that would need a sanitizer build of Rust's std):
# its internal synchronisation is invisible to TSan, so the interceptors it calls are ignored and
# TSan checks what the host does with the library across threads.
TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(pwd)/tests/c/tsan.supp" \
    "$OUT/threads_test" models/dcss-small-ledi.safetensors

echo "-- cycles_test (1000 load/sample/free cycles: resident memory flat, then no leak under LSan)"
CYCLES=${CYCLES:-1000}
gcc -std=c11 $WARN -O1 -Iinclude tests/c/cycles_test.c -L"$LIB" -llediflow -Wl,-rpath,"$(cd "$LIB" && pwd)" \
    -o "$OUT/cycles_test"
"$OUT/cycles_test" models/dcss-small-ledi.safetensors "$CYCLES" 8192
# Standalone LeakSanitizer (only the allocator is replaced): fast enough for 1000 cycles.
gcc -std=c11 $WARN -g -fsanitize=leak -Iinclude tests/c/cycles_test.c -L"$LIB" -llediflow \
    -Wl,-rpath,"$(cd "$LIB" && pwd)" -o "$OUT/cycles_test_lsan"
"$OUT/cycles_test_lsan" models/dcss-small-ledi.safetensors "$CYCLES"

echo "-- static library"
gcc -std=c11 $WARN -Iinclude tests/c/static_link.c "$LIB/liblediflow.a" -lpthread -ldl -lm -lrt -o "$OUT/static_link"
"$OUT/static_link" models/dcss-small-ledi.safetensors

echo "-- C++ wrapper (ASan + UBSan)"
g++ -std=c++17 $WARN -g -fsanitize=address,undefined -Iinclude -Ibindings/cpp tests/c/wrapper_test.cpp \
    -L"$LIB" -llediflow -lpthread -Wl,-rpath,"$(cd "$LIB" && pwd)" -o "$OUT/wrapper_test"
ASAN_OPTIONS=detect_leaks=1 "$OUT/wrapper_test" $MODELS
echo "-- C ABI tests OK"
