#!/usr/bin/env bash
# Build duplex and run every test: unit, interop and end-to-end tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (clang), a warnings-as-errors
# gcc build, and each libFuzzer target for a bounded time.
#   FUZZ_SECONDS=60 (per target)   SKIP_FUZZ=1 to skip fuzzing
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/deps.sh" --test

jobs=$(nproc)
step() { printf '\n==> %s\n' "$*"; }
# Quiet build; on failure show the compiler's output.
build() {
  if ! cmake --build "$1" -j"$jobs" >"$1.log" 2>&1; then
    cat "$1.log" >&2
    echo "build of $1 failed" >&2
    exit 1
  fi
}

step "gcc build, -Werror"
cmake -S . -B build/gcc -DCMAKE_C_COMPILER=gcc -DDX_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
  -DDX_BUILD_TESTS=ON >/dev/null
build build/gcc

step "clang build with ASan + UBSan"
CC=clang cmake -S . -B build/asan -DCMAKE_C_COMPILER=clang -DDX_SANITIZE=ON -DDX_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
build build/asan

step "ctest (unit, interop, e2e) under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build/asan && ctest --output-on-failure -j"$jobs")

if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  step "libFuzzer targets, ${FUZZ_SECONDS:-60}s each"
  cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DDX_FUZZ=ON -DDX_BUILD_TESTS=OFF \
    -DDX_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  build build/fuzz
  "$here/scripts/fuzz.sh" build/fuzz "${FUZZ_SECONDS:-60}"
fi
echo
echo "all tests passed"
