#!/usr/bin/env bash
# Build the server-benchmark tools with cc directly (bench/CMakeLists.txt
# picks up bench/bench_*.c, which link libduplex; these must not, and build
# even when the library does not).
#   bench/build.sh [OUTDIR]     default OUTDIR: build-bench/ at the repo root
# Produces OUTDIR/loadgen, OUTDIR/hubload and, if libwebsockets-dev is
# installed, OUTDIR/lws_echo.
set -euo pipefail

case "${1:-}" in
-h | --help)
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../build-bench}"
mkdir -p "$out"
cc="${CC:-cc}"
cflags=(-std=c11 -O2 -g -Wall -Wextra -Wshadow)

echo "build.sh: loadgen -> $out/loadgen"
"$cc" "${cflags[@]}" -o "$out/loadgen" "$here/loadgen.c" -lcrypto -lm
echo "build.sh: hubload -> $out/hubload"
"$cc" "${cflags[@]}" -o "$out/hubload" "$here/hubload.c" -lcrypto -lm

if pkg-config --exists libwebsockets 2>/dev/null; then
  echo "build.sh: lws_echo (libwebsockets $(pkg-config --modversion libwebsockets)) -> $out/lws_echo"
  # shellcheck disable=SC2046
  "$cc" "${cflags[@]}" -o "$out/lws_echo" "$here/peers/lws_echo.c" \
    $(pkg-config --cflags --libs libwebsockets)
else
  echo "build.sh: libwebsockets-dev not installed; skipping lws_echo" >&2
fi
