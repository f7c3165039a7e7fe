#!/usr/bin/env bash
# latency.sh: `duplex bench` (the library's own client) against duplex
# echo, Node ws and libwebsockets: echo latency at a fixed message rate
# (open loop, so a slow server cannot slow the load down and hide its
# queueing) and a connection storm (handshakes per second).
#
# usage: bench/latency.sh [OPTIONS]
#   --quick            2 rounds of 3 s runs (default: 3 rounds of 5 s runs)
#   --rounds R         rounds (each round runs every server once, in turn)
#   --duration T       measured seconds per run (warmup is 1 s on top)
#   --rates LIST       total messages/s for the latency runs (default 10000,40000)
#   --servers LIST     subset of duplex,node,lws (default all)
#   --out FILE         raw results (default bench/results/latency-<date>.txt)
#   -h, --help         this help
#
# Each latency run: 100 connections, 16-byte binary messages, R messages/s
# in total spread evenly over the connections; latency counts from each
# message's due time to its echo (coordinated omission accounted for).
# Storm: 50 concurrent clients, each connecting, upgrading, closing, again.
# Servers are pinned to CPU 0 and `duplex bench` to CPU 1, started fresh for
# every run, in alternation; tables show medians over the rounds. Uses the
# peers and build of bench/compare.sh (bench/build.sh, bench/peers/).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds=3 duration=5 rates="10000,40000" servers="duplex,node,lws" out=""
port=9471

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --quick) rounds=2 duration=3 ;;
  --rounds) rounds="$2"; shift ;;
  --duration) duration="$2"; shift ;;
  --rates) rates="$2"; shift ;;
  --servers) servers="$2"; shift ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "latency.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
log() { printf '[latency %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }

if has "$servers" lws && ! pkg-config --exists libwebsockets 2>/dev/null; then
  log "installing libwebsockets-dev"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libwebsockets-dev >/dev/null
fi
if has "$servers" node && [[ ! -d "$here/node_modules/ws" ]]; then
  log "npm install (ws) in bench/"
  (cd "$here" && npm install --no-audit --no-fund --loglevel=error)
fi
bin="$root/build-bench"
"$here/build.sh" "$bin" >&2
log "building duplex (Release) in build-bench/duplex-rel/"
cmake -S "$root" -B "$bin/duplex-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$bin/duplex-rel" -j2 --target duplex_cli >/dev/null
duplex="$bin/duplex-rel/duplex"

mkdir -p "$here/results"
out="${out:-$here/results/latency-$(date +%Y-%m-%d-%H%M%S).txt}"
{
  echo "# bench/latency.sh raw results, $(date -Is)"
  echo "# rounds=$rounds duration=${duration}s rates=$rates"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; kernel $(uname -r)"
  echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: scenario server round json"
} >"$out"

server_cmd() {
  case "$1" in
  duplex) echo "$duplex echo --host 127.0.0.1 --port $port --log-level warn" ;;
  node) echo "node $here/peers/node_ws_echo.mjs --host 127.0.0.1 --port $port" ;;
  lws) echo "$bin/lws_echo --host 127.0.0.1 --port $port" ;;
  esac
}
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
trap '[[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null || true' EXIT
start_server() { # NAME
  # shellcheck disable=SC2046
  start_pinned "$port" "$out.log" $(server_cmd "$1") && return 0
  log "$1 did not start"
  return 1
}
stop_server() { stop_pinned "$port"; }

IFS=, read -ra srv_list <<<"$servers"
IFS=, read -ra rate_list <<<"$rates"
scen=()
for r in "${rate_list[@]}"; do scen+=("rate$r"); done
scen+=(storm)
total=$((${#scen[@]} * rounds * ${#srv_list[@]})) n=0
log "$total runs; raw results in $out"
for sc in "${scen[@]}"; do
  for ((round = 1; round <= rounds; round++)); do
    for srv in "${srv_list[@]}"; do
      n=$((n + 1))
      start_server "$srv" || continue
      if [[ "$sc" == storm ]]; then
        args=(--handshakes -c 50)
      else
        args=(-c 100 -s 16 -r "${sc#rate}")
      fi
      json=$(taskset -c 1 "$duplex" bench "ws://127.0.0.1:$port/" "${args[@]}" -d "${duration}s" \
        -w 1s --json 2>>"$out.log" || echo '{"failed":1}')
      stop_server
      echo "$sc $srv $round $json" >>"$out"
      log "[$n/$total] $sc $srv round $round: $(cut -c1-160 <<<"$json")"
    done
  done
done

python3 - "$out" <<'EOF' | tee /dev/stderr | sed 's/^/# /' >>"$out"
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith('#'): continue
    sc, srv, rnd, js = line.split(' ', 3)
    d = json.loads(js)
    if 'failed' in d: continue
    rows.setdefault(sc, {}).setdefault(srv, []).append(d)
def med(runs, *keys):
    for k in keys:
        v = [r[k] for r in runs if k in r]
        if v: return statistics.median(v)
    return float('nan')
for sc, srvs in rows.items():
    if sc == 'storm':
        print('\nconnection storm, 50 at a time')
        print('| server | runs | handshakes/s | errors |')
        print('| --- | ---: | ---: | ---: |')
        for s, runs in srvs.items():
            print(f"| {s} | {len(runs)} | {med(runs, 'handshakes_per_sec', 'handshakes_per_s'):,.0f} | {sum(r.get('errors', 0) for r in runs)} |")
    else:
        print(f"\necho latency at {int(sc[4:]):,} messages/s (100 connections, 16 B)")
        print('| server | runs | achieved msg/s | p50 us | p99 us | p99.9 us | max us | errors |')
        print('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
        for s, runs in srvs.items():
            print(f"| {s} | {len(runs)} | {med(runs, 'msgs_per_sec', 'msgs_per_s'):,.0f} | {med(runs, 'p50_us'):,.0f} | {med(runs, 'p99_us'):,.0f} "
                  f"| {med(runs, 'p999_us'):,.0f} | {med(runs, 'max_us'):,.0f} | {sum(r.get('errors', 0) for r in runs)} |")
EOF
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"
log "results: $out"
