#!/usr/bin/env bash
# Install what duplex needs to build, test and run, on Debian 12.
# Idempotent: installs only what is missing, so a warm machine skips apt.
#   scripts/deps.sh          build + run dependencies
#   scripts/deps.sh --test   also what the test suite needs (peers, fuzzing)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libssl-dev zlib1g-dev libjansson-dev libjwt-dev libhiredis-dev openssl
      ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  # clang + compiler-rt for ASan/UBSan/libFuzzer; real peers for interop.
  pkgs+=(clang libclang-rt-14-dev python3 python3-websockets python3-prometheus-client nodejs npm chromium curl
         fonts-wqy-microhei fonts-noto-color-emoji)
  # nginx in front of the hub (test_hub_nginx runs its own, as this user, on
  # a free loopback port; a system nginx the package may start is left alone).
  pkgs+=(nginx)
  # nm, objdump, readelf (test_symbols, test_install) and dpkg-shlibdeps for
  # cpack -G DEB (test_install); build-essential brings them, named here anyway.
  pkgs+=(binutils dpkg-dev)
  # Real Redis for the hub's Redis tests (tests/lib.sh start_redis, start_sentinel,
  # start_redis_cluster): Debian's redis-server runs sentinels (--sentinel) and serves TLS.
  pkgs+=(redis-server redis-tools)
  # systemd-analyze verify / security for docs/deploy/duplex.service (test_systemd_unit).
  pkgs+=(systemd)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs may come from elsewhere than Debian; a working node+npm is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || keep+=("$p"); done
  missing=("${keep[@]+"${keep[@]}"}")
fi

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [[ ! -d "$here/tests/interop/node_modules/ws" || ! -d "$here/tests/interop/node_modules/playwright-core" ]]; then
    echo "deps: npm install (tests/interop)" >&2
    (cd "$here/tests/interop" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
