#!/usr/bin/env bash
# compare.sh: duplex echo vs Node ws vs libwebsockets (and uWebSockets when
# a checkout is given), side by side.
#
# usage: bench/compare.sh [OPTIONS]
#   --quick            2 rounds of 2 s runs (default: 5 rounds of 5 s runs)
#   --rounds R         rounds (each round runs every server once, in turn)
#   --duration T       measured seconds per run (warmup is 1 s on top)
#   --scenarios LIST   comma-separated subset of a..k (default all)
#   --servers LIST     comma-separated subset of duplex,node,lws,uws (default
#                      all; uws only with UWS_DIR)
#   --duplex PATH      use this duplex binary instead of building one
#   --no-install       do not apt-get/npm install missing peers
#   --out FILE         raw results file (default bench/results/<date>.txt)
#   -h, --help         this help
#
# Scenarios: (a) 100 conns x 16 B x 1 in flight, (b) 100 x 16 B x 8,
# (c) 100 x 4 KiB x 1, (d) 1,000 x 16 B x 1, (e) handshakes (50 at a time),
# (f) memory per idle connection at 10,000 connections; large binary
# messages: (g) 100 x 4 KiB x 4, (h) 100 x 64 KiB x 1, (i) 100 x 64 KiB x 4,
# (j) 10 x 1 MiB x 1, (k) 10 x 1 MiB x 4.
#
# uWebSockets: with UWS_DIR=/path/to/uWebSockets (a checkout; uSockets in its
# uSockets/ submodule or at USOCKETS_DIR) the script builds
# bench/peers/uws_echo.cpp against it (g++ -std=c++20, zlib) and adds the
# "uws" server. Nothing of it is copied into this repository.
#
# Servers run in alternation (duplex, node, lws, duplex, ...), each started
# fresh for each run, pinned to CPU 0; loadgen is pinned to CPU 1. The key
# metric is work per server CPU-second: loadgen reads the server's
# utime+stime from /proc at the start and end of its measured window. The
# table shows medians over the rounds. Needs root or a hard `ulimit -n` of at
# least 20,100 for scenario (f); the script raises the limit itself.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds=5 duration=5 warmup=1 quick=0 install=1
scenarios="a,b,c,d,e,f,g,h,i,j,k" servers="duplex,node,lws" duplex_bin="" out=""
port_base=${COMPARE_PORT_BASE:-9301} # another run at once needs another base

usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }
uws_dir="${UWS_DIR:-}" servers_given=0
while (($#)); do
  case "$1" in
  --quick) quick=1 rounds=2 duration=2 ;;
  --rounds) rounds="$2"; shift ;;
  --duration) duration="$2"; shift ;;
  --scenarios) scenarios="$2"; shift ;;
  --servers) servers="$2" servers_given=1; shift ;;
  --duplex) duplex_bin="$2"; shift ;;
  --no-install) install=0 ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }

if [[ -n "$uws_dir" ]] && ((!servers_given)); then servers="$servers,uws"; fi
if has "$servers" uws && [[ -z "$uws_dir" ]]; then
  log "the uws server needs UWS_DIR=/path/to/uWebSockets"; exit 2
fi

# --- file descriptors: 10,000 idle connections need 10k fds on each side ----
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if has "$scenarios" f && (($(ulimit -n) < 10100)); then
  log "ulimit -n is $(ulimit -n), below the 10,100 scenario f needs (per process); skipping it"
  scenarios="${scenarios//f/}"
fi

# --- peers and tools ------------------------------------------------------
if has "$servers" lws && ! pkg-config --exists libwebsockets 2>/dev/null; then
  ((install)) || { log "libwebsockets-dev missing (and --no-install)"; exit 1; }
  log "installing libwebsockets-dev"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libwebsockets-dev >/dev/null
fi
if has "$servers" node && [[ ! -d "$here/node_modules/ws" ]]; then
  if ((install)); then
    log "npm install (ws) in bench/"
    (cd "$here" && npm install --no-audit --no-fund --loglevel=error)
  elif [[ ! -d "$root/tests/interop/node_modules/ws" ]]; then
    log "Node ws missing (and --no-install)"; exit 1
  fi
fi

bin="$root/build-bench"
log "building loadgen and lws_echo into $bin"
"$here/build.sh" "$bin" >&2
uws_rev=-
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
if has "$servers" uws; then
  build_uws "$uws_dir" "$bin" || exit 1
fi
if [[ -z "$duplex_bin" ]]; then
  # A build tree of our own, so that nobody else's rebuild swaps the binary
  # between rounds.
  log "building duplex (Release) in build-bench/duplex-rel/"
  cmake -S "$root" -B "$bin/duplex-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$bin/duplex-rel" -j2 --target duplex_cli >/dev/null
  duplex_bin="$bin/duplex-rel/duplex"
fi

# --- results file -----------------------------------------------------------
mkdir -p "$here/results"
out="${out:-$here/results/$(date +%Y-%m-%d-%H%M%S).txt}"
{
  echo "# bench/compare.sh raw results, $(date -Is)"
  echo "# rounds=$rounds duration=${duration}s warmup=${warmup}s quick=$quick"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; kernel $(uname -r)"
  echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "# libwebsockets: $(pkg-config --modversion libwebsockets 2>/dev/null || echo -)"
  echo "# uWebSockets: $uws_rev"
  echo "# node: $(node --version 2>/dev/null || echo -), ws: $(node -p "require('$here/node_modules/ws/package.json').version" 2>/dev/null || echo -)"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: scenario server round json"
} >"$out"

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  log "warning: load average is $load on $(nproc) CPUs; wall-clock rates will be noisy"
fi

# --- servers ----------------------------------------------------------------
server_cmd() { # NAME PORT
  case "$1" in
  duplex) echo "$duplex_bin echo --host 127.0.0.1 --port $2 --log-level warn --max-connections 50000" ;;
  node) echo "node $here/peers/node_ws_echo.mjs --host 127.0.0.1 --port $2" ;;
  lws) echo "$bin/lws_echo --host 127.0.0.1 --port $2" ;;
  uws) echo "$bin/uws_echo --host 127.0.0.1 --port $2" ;;
  esac
}
start_server() { # NAME PORT
  # shellcheck disable=SC2046
  start_pinned "$2" "$out.log" $(server_cmd "$1" "$2") && return 0
  log "$1 did not start listening on port $2 (see $out.log)"
  return 1
}
stop_server() { stop_pinned; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

scenario_args() {
  case "$1" in
  a) echo "--connections 100 --size 16 --inflight 1" ;;
  b) echo "--connections 100 --size 16 --inflight 8" ;;
  c) echo "--connections 100 --size 4096 --inflight 1" ;;
  d) echo "--connections 1000 --size 16 --inflight 1" ;;
  e) echo "--handshakes --connections 50" ;;
  f) echo "--idle --connections 10000" ;;
  g) echo "--connections 100 --size 4K --inflight 4" ;;
  h) echo "--connections 100 --size 64K --inflight 1" ;;
  i) echo "--connections 100 --size 64K --inflight 4" ;;
  j) echo "--connections 10 --size 1M --inflight 1" ;;
  k) echo "--connections 10 --size 1M --inflight 4" ;;
  esac
}

rss_anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

run_idle() { # NAME PORT -> JSON on stdout
  local name=$1 port=$2 ctl r0 r1 a0 a1 ready=0
  ctl="$(mktemp -u)"
  mkfifo "$ctl"
  # One connection comes and goes before the baseline: the first handshake
  # faults in ~2 MB of library code (libcrypto's SHA-1, lazy binding), a
  # one-time cost that would otherwise be charged to the 10,000 connections.
  "$bin/loadgen" --port "$port" --handshakes --connections 1 --duration 0.2 --warmup 0 \
    >/dev/null 2>>"$out.log" || true
  sleep 0.5
  r0=$(rss_kb "$server_pid") a0=$(rss_anon_kb "$server_pid")
  # loadgen holds the connections until its stdin (the FIFO) reaches EOF.
  # shellcheck disable=SC2046
  taskset -c 1 "$bin/loadgen" --port "$port" $(scenario_args f) <"$ctl" >"$ctl.out" 2>>"$out.log" &
  local lg=$!
  exec 7>"$ctl"
  for _ in $(seq 300); do
    grep -q READY "$ctl.out" 2>/dev/null && { ready=1; break; }
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1 # let the server finish any per-connection work after the 101
  r1=$(rss_kb "$server_pid") a1=$(rss_anon_kb "$server_pid")
  exec 7>&-
  wait "$lg" || ready=0
  rm -f "$ctl" "$ctl.out"
  ((ready)) || log "$name: idle connections did not all come up"
  echo "{\"mode\":\"idle\",\"connections\":10000,\"ok\":$ready,\"rss_before_kb\":$r0,\"rss_after_kb\":$r1,\"bytes_per_conn\":$(((r1 - r0) * 1024 / 10000)),\"anon_before_kb\":$a0,\"anon_after_kb\":$a1,\"anon_bytes_per_conn\":$(((a1 - a0) * 1024 / 10000))}"
}

IFS=, read -ra scen_list <<<"$scenarios"
IFS=, read -ra srv_list <<<"$servers"

# --- preflight: every server must echo correctly before it is measured ------
verify_cases=(
  "--connections 4 --size 1M --fragment 64K" # fragmented, large: reassembly
  "--connections 4 --size 70000 --text --inflight 3"
  "--connections 4 --size 0 --inflight 4"
  "--connections 20 --size 125 --fragment 7 --inflight 2"
)
i=0
for srv in "${srv_list[@]}"; do
  port=$((port_base + i)) i=$((i + 1))
  start_server "$srv" "$port" || exit 1
  for args in "${verify_cases[@]}"; do
    # shellcheck disable=SC2086
    if ! "$bin/loadgen" --port "$port" $args --verify --duration 0.5 --warmup 0 --json \
      >/dev/null 2>>"$out.log"; then
      log "$srv failed the echo check ($args); see $out.log"
      stop_server
      exit 1
    fi
  done
  stop_server
  log "$srv echoes correctly (fragmented, large, text, empty messages)"
done
total=$((${#scen_list[@]} * rounds * ${#srv_list[@]})) done_runs=0
log "$total runs: scenarios ${scenarios}, servers ${servers}, $rounds rounds, ${duration}s each; raw results in $out"
for sc in "${scen_list[@]}"; do
  [[ -n "$sc" ]] || continue
  for ((r = 1; r <= rounds; r++)); do
    i=0
    for srv in "${srv_list[@]}"; do
      port=$((port_base + i)) i=$((i + 1)) done_runs=$((done_runs + 1))
      for _ in 1 2; do # one retry if the server died under us
        start_server "$srv" "$port" || { json='{"failed":"start"}'; break; }
        if [[ "$sc" == f ]]; then
          json=$(run_idle "$srv" "$port")
        else
          # shellcheck disable=SC2046
          json=$(taskset -c 1 "$bin/loadgen" --port "$port" $(scenario_args "$sc") \
            --duration "$duration" --warmup "$warmup" --pid "$server_pid" --json 2>>"$out.log") ||
            log "$srv: loadgen reported errors (scenario $sc round $r)"
          [[ -n "$json" ]] || json='{"failed":"loadgen"}'
        fi
        alive=1
        kill -0 "$server_pid" 2>/dev/null || alive=0
        stop_server
        ((alive)) && break
        log "$srv exited during scenario $sc round $r (status $server_status; see $out.log)"
        json='{"failed":"server exited"}'
      done
      echo "$sc $srv $r $json" >>"$out"
      log "[$done_runs/$total] $sc round $r $srv: $json"
    done
  done
done

# --- summary: medians per scenario and server, ratios duplex / peer ----------
summary=$(python3 - "$out" <<'EOF'

import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split(' ', 3)
    if line.startswith('#') or len(parts) != 4 or not parts[3].startswith('{'): continue
    sc, srv, rnd, js = parts
    d = json.loads(js)
    if 'failed' in d: continue
    rows.setdefault(sc, {}).setdefault(srv, []).append(d)
names = {'a': '(a) 100 conns x 16 B x 1 in flight', 'b': '(b) 100 conns x 16 B x 8 in flight',
         'c': '(c) 100 conns x 4 KiB x 1 in flight', 'd': '(d) 1,000 conns x 16 B x 1 in flight',
         'e': '(e) handshakes, 50 at a time', 'f': '(f) memory per idle connection, 10,000 conns',
         'g': '(g) 100 conns x 4 KiB x 4 in flight', 'h': '(h) 100 conns x 64 KiB x 1 in flight',
         'i': '(i) 100 conns x 64 KiB x 4 in flight', 'j': '(j) 10 conns x 1 MiB x 1 in flight',
         'k': '(k) 10 conns x 1 MiB x 4 in flight'}
med = lambda runs, k: statistics.median(r[k] for r in runs)
for sc in sorted(rows):
    srvs = rows[sc]
    print(f'\n{names.get(sc, sc)}')
    if sc == 'f':
        print('| server | runs | VmRSS bytes/conn | RssAnon bytes/conn | VmRSS before -> after, kB | duplex / server (VmRSS) |')
        print('| --- | ---: | ---: | ---: | --- | ---: |')
        base = med(srvs['duplex'], 'bytes_per_conn') if 'duplex' in srvs else None
        for s, runs in srvs.items():
            v = med(runs, 'bytes_per_conn')
            ratio = f'{base / v:.2f}' if base is not None and v else '-'
            anon = f"{med(runs, 'anon_bytes_per_conn'):.0f}" if all('anon_bytes_per_conn' in r for r in runs) else '-'
            print(f"| {s} | {len(runs)} | {v:.0f} | {anon} | {med(runs, 'rss_before_kb'):.0f} -> {med(runs, 'rss_after_kb'):.0f} | {ratio} |")
        continue
    hs = sc == 'e'
    rate = 'handshakes_per_s' if hs else 'msgs_per_s'
    unit = 'handshakes' if hs else 'echoes'
    print(f'| server | runs | {unit}/s | {unit} per server CPU-s | server CPU | loadgen CPU |'
          + ('' if hs else ' p50 / p99 / p99.9 us |') + ' duplex / server (per CPU-s) | duplex / server (wall) |')
    print('| --- | ---: | ---: | ---: | ---: | ---: |' + ('' if hs else ' ---: |') + ' ---: | ---: |')
    base = srvs.get('duplex')
    for s, runs in srvs.items():
        cpu = [r['server_cpu_s'] / r['seconds'] for r in runs]
        lg = [r['loadgen_cpu_s'] / r['seconds'] for r in runs]
        pc, wall = med(runs, 'per_server_cpu_s'), med(runs, rate)
        lat = '' if hs else f" {med(runs, 'p50_us'):.0f} / {med(runs, 'p99_us'):.0f} / {med(runs, 'p999_us'):.0f} |"
        rpc = f"{med(base, 'per_server_cpu_s') / pc:.2f}" if base and pc else '-'
        rw = f"{med(base, rate) / wall:.2f}" if base and wall else '-'
        errs = sum(r['errors'] for r in runs)
        print(f'| {s} | {len(runs)} | {wall:,.0f} | {pc:,.0f} | {100 * statistics.median(cpu):.0f}% '
              f'| {100 * statistics.median(lg):.0f}% |{lat} {rpc} | {rw} |' + (f' ({errs} errors)' if errs else ''))
EOF
)
echo "$summary"
{
  echo "# summary (medians)"
  while IFS= read -r line; do echo "# $line"; done <<<"$summary"
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out"
log "raw results and summary: $out; server/loadgen stderr: $out.log"
