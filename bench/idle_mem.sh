#!/usr/bin/env bash
# idle_mem.sh: server memory per idle WebSocket connection, duplex vs Node ws
# vs libwebsockets (vs uWebSockets with UWS_DIR=/path/to/uWebSockets, built as
# bench/compare.sh does), at 10,000 and 50,000 connections.
#
# usage: bench/idle_mem.sh [OPTIONS]
#   --rounds R         rounds (each round runs every server once, in turn; default 5)
#   --counts LIST      comma-separated connection counts (default 10000,50000)
#   --servers LIST     comma-separated subset of duplex,node,lws,uws (default all
#                      that are present; uws needs UWS_DIR)
#   --duplex PATH      use this duplex binary instead of building one
#   --out FILE         raw results file (default bench/results/idle-<date>.txt)
#   -h, --help         this help
#
# Method: the server starts fresh, pinned to CPU 0; one connection opens and
# closes (the first handshake faults in library code once); VmRSS and RssAnon
# are read from /proc/PID/status; loadgen (CPU 1) opens N connections, spread
# over source addresses 127.0.0.1..4 (one address has only ~28k ephemeral
# ports), upgrades them all and holds them; 1 s after the last upgrade
# VmRSS/RssAnon are read again; the growth divided by N is the figure.
# Kernel socket memory is not in RSS and not counted. Needs root, or a hard
# `ulimit -n` above N + 100 (the script raises the limits itself).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds=5 counts="10000,50000" servers="" duplex_bin="" out="" port=9381

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --rounds) rounds="$2"; shift ;;
  --counts) counts="$2"; shift ;;
  --servers) servers="$2"; shift ;;
  --duplex) duplex_bin="$2"; shift ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "idle_mem.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[idle_mem %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

max_count=0
IFS=, read -ra count_list <<<"$counts"
for n in "${count_list[@]}"; do ((n > max_count)) && max_count=$n; done
ulimit -Hn $((max_count + 1000)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Without CAP_SYS_RESOURCE the hard limit cannot be raised: skip the counts
# that do not fit (say so) rather than measure a server that refuses
# connections.
fit=()
for n in "${count_list[@]}"; do
  if (($(ulimit -n) < n + 100)); then
    log "ulimit -n is $(ulimit -n) (hard $(ulimit -Hn)), below the $((n + 100)) that $n connections need; skipping $n"
  else
    fit+=("$n")
  fi
done
((${#fit[@]})) || exit 1
count_list=("${fit[@]}")

bin="$root/build-bench"
log "building loadgen (and lws_echo if libwebsockets-dev is installed) into $bin"
"$here/build.sh" "$bin" >&2
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
uws_rev=-
if [[ -n "${UWS_DIR:-}" ]] && [[ -z "$servers" || ",$servers," == *",uws,"* ]]; then
  build_uws "$UWS_DIR" "$bin" || exit 1
fi
if [[ -z "$duplex_bin" ]]; then
  cmake -S "$root" -B "$bin/duplex-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$bin/duplex-rel" -j2 --target duplex_cli >/dev/null
  duplex_bin="$bin/duplex-rel/duplex"
fi
if [[ -z "$servers" ]]; then
  servers="duplex"
  [[ -d "$here/node_modules/ws" || -d "$root/tests/interop/node_modules/ws" ]] && servers+=",node"
  [[ -x "$bin/lws_echo" ]] && servers+=",lws"
  [[ -n "${UWS_DIR:-}" ]] && servers+=",uws"
fi
IFS=, read -ra srv_list <<<"$servers"

server_cmd() { # NAME PORT
  case "$1" in
  duplex) echo "$duplex_bin echo --host 127.0.0.1 --port $2 --log-level warn --max-connections $((max_count + 100))" ;;
  node) echo "node $here/peers/node_ws_echo.mjs --host 127.0.0.1 --port $2" ;;
  lws) echo "$bin/lws_echo --host 127.0.0.1 --port $2" ;;
  uws) echo "$bin/uws_echo --host 127.0.0.1 --port $2" ;;
  esac
}

mkdir -p "$here/results"
out="${out:-$here/results/idle-$(date +%Y-%m-%d-%H%M%S).txt}"
{
  echo "# bench/idle_mem.sh raw results, $(date -Is)"
  echo "# rounds=$rounds counts=$counts servers=$servers"
  echo "# libwebsockets: $(pkg-config --modversion libwebsockets 2>/dev/null || echo -); node: $(node --version 2>/dev/null || echo -); uWebSockets: $uws_rev"
  echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "# kernel $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: count server round json"
} >"$out"

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

run_idle() { # NAME COUNT -> JSON on stdout
  local name=$1 n=$2 ctl r0 r1 a0 a1 ready=0 lg
  ctl="$(mktemp -u)"
  mkfifo "$ctl"
  "$bin/loadgen" --port "$port" --handshakes --connections 1 --duration 0.2 --warmup 0 \
    >/dev/null 2>>"$out.log" || true
  sleep 0.5
  r0=$(status_kb "$server_pid" VmRSS) a0=$(status_kb "$server_pid" RssAnon)
  # loadgen holds the connections until its stdin (the FIFO) reaches EOF.
  taskset -c 1 "$bin/loadgen" --port "$port" --idle --connections "$n" --sources 4 \
    <"$ctl" >"$ctl.out" 2>>"$out.log" &
  lg=$!
  exec 7>"$ctl"
  for _ in $(seq 1200); do
    grep -q READY "$ctl.out" 2>/dev/null && { ready=1; break; }
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1
  r1=$(status_kb "$server_pid" VmRSS) a1=$(status_kb "$server_pid" RssAnon)
  exec 7>&-
  wait "$lg" || ready=0
  rm -f "$ctl" "$ctl.out"
  ((ready)) || log "$name: the $n idle connections did not all come up"
  echo "{\"connections\":$n,\"ok\":$ready,\"rss_before_kb\":$r0,\"rss_after_kb\":$r1,\"bytes_per_conn\":$(((r1 - r0) * 1024 / n)),\"anon_before_kb\":$a0,\"anon_after_kb\":$a1,\"anon_bytes_per_conn\":$(((a1 - a0) * 1024 / n))}"
}

for n in "${count_list[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    for srv in "${srv_list[@]}"; do
      # shellcheck disable=SC2046
      if ! start_pinned "$port" "$out.log" $(server_cmd "$srv" "$port"); then
        log "$srv did not start listening on port $port (see $out.log)"
        echo "$n $srv $r {\"failed\":\"start\"}" >>"$out"
        stop_pinned "$port"
        continue
      fi
      json=$(run_idle "$srv" "$n")
      kill -0 "$server_pid" 2>/dev/null || json='{"failed":"server exited"}'
      stop_pinned "$port"
      # Sockets in TIME_WAIT keep their ports; give the next run fresh ones.
      sleep 1
      echo "$n $srv $r $json" >>"$out"
      log "$n conns, round $r, $srv: $json"
    done
  done
done

summary=$(python3 - "$out" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split(' ', 3)
    if line.startswith('#') or len(parts) != 4 or not parts[3].startswith('{'): continue
    d = json.loads(parts[3])
    if 'failed' in d or not d.get('ok'): continue
    rows.setdefault(int(parts[0]), {}).setdefault(parts[1], []).append(d)
med = lambda runs, k: statistics.median(r[k] for r in runs)
for n in sorted(rows):
    srvs = rows[n]
    print(f'\nmemory per idle connection, {n:,} connections (medians)')
    print('| server | runs | VmRSS bytes/conn | RssAnon bytes/conn | VmRSS before -> after, kB | server / duplex |')
    print('| --- | ---: | ---: | ---: | --- | ---: |')
    base = med(srvs['duplex'], 'bytes_per_conn') if 'duplex' in srvs else None
    for s, runs in srvs.items():
        v = med(runs, 'bytes_per_conn')
        ratio = f'{v / base:.2f}' if base else '-'
        print(f"| {s} | {len(runs)} | {v:.0f} | {med(runs, 'anon_bytes_per_conn'):.0f} "
              f"| {med(runs, 'rss_before_kb'):.0f} -> {med(runs, 'rss_after_kb'):.0f} | {ratio} |")
EOF
)
echo "$summary"
{
  echo "# summary"
  while IFS= read -r line; do echo "# $line"; done <<<"$summary"
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out"
log "raw results and summary: $out; stderr of servers and loadgen: $out.log"
