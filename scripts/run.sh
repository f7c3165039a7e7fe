#!/usr/bin/env bash
# Build duplex (Release) and run the main job: the pub/sub hub (duplex serve)
# with its demo pages on http://127.0.0.1:8080/ (Ctrl-C stops it).
#   PORT=8080 HOST=127.0.0.1 scripts/run.sh [extra server flags]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/deps.sh"
echo "==> building (Release)" >&2
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DDX_BUILD_TESTS=OFF -DDX_BUILD_BENCH=OFF \
  >/dev/null
if ! cmake --build build/release -j"$(nproc)" >build/release.log 2>&1; then
  cat build/release.log >&2
  exit 1
fi
port=${PORT:-8080}
host=${HOST:-127.0.0.1}
echo "==> open http://$host:$port/ in a browser (Ctrl-C to stop)" >&2
exec build/release/duplex serve --host "$host" --port "$port" --static web --deflate --demo "$@"
