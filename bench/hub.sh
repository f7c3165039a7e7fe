#!/usr/bin/env bash
# hub.sh: pub/sub fan-out, duplex serve vs nchan vs Socket.IO, side by side,
# with WebSocket subscribers (and Server-Sent Events ones, see --servers).
#
# usage: bench/hub.sh [OPTIONS]
#   --quick            smoke run: 1 round, 2 s, a tenth of the subscribers
#   --rounds R         rounds (each round runs every server once, in turn;
#                      default 3, or $HUB_ROUNDS)
#   --duration T       measured seconds of publishing per run (default 10)
#   --warmup T         seconds of publishing before that (default 2)
#   --drain T          at most this long for late deliveries (default 10)
#   --scenarios LIST   comma-separated subset of a,b,c,d,e (default a,b,c,d)
#   --servers LIST     comma-separated subset of duplex,nchan,socketio (the
#                      default), duplex-sse (duplex's GET /sse) and nchan-sse
#                      (nchan's EventSource subscribers): the -sse servers
#                      are the same servers with SSE subscribers
#   --duplex PATH      use this duplex binary instead of building one
#   --publish MODE     how duplex is published to: http (default; POST
#                      /api/publish, as the peers) or ws (one WebSocket)
#   --no-install       do not apt-get/npm install missing peers
#   --out FILE         raw results file (default bench/results/hub-<date>.txt)
#   -h, --help         this help
#
# Scenarios (64-byte publications, open loop, topics round robin):
#   (a) 10,000 subscribers x 1 topic,  100 publications/s offered
#   (b) 10,000 subscribers x 1 topic,  1,000/s
#   (c)  1,000 subscribers x 1 topic,  1,000/s
#   (d) 10,000 subscribers on 1,000 topics (10 each), 1,000/s
#   (e)  1,000 subscribers x 1 topic,  100/s
#
# Every run starts its server fresh on a free loopback port, pinned to CPU 0;
# hubload runs on CPU 1 and reads the server's CPU time and RSS from /proc.
# Servers alternate (in --servers order, round after round); the table shows
# medians over the rounds, with duplex / peer ratios. Environment:
# HUB_ROUNDS, HUB_QUICK=1 (as --quick), DUPLEX_SERVE_ARGS (extra flags for
# duplex serve, e.g. "--max-buffered 16M"), DUPLEX_REV (noted in the results
# with --duplex: what the binary was built from).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds="${HUB_ROUNDS:-3}" duration=10 warmup=2 drain=10 quick="${HUB_QUICK:-0}" install=1
scenarios="a,b,c,d" servers="duplex,nchan,socketio" duplex_bin="" out="" publish=http
api_key="hub-bench-key"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --quick) quick=1 ;;
  --rounds) rounds="$2"; shift ;;
  --duration) duration="$2"; shift ;;
  --warmup) warmup="$2"; shift ;;
  --drain) drain="$2"; shift ;;
  --scenarios) scenarios="$2"; shift ;;
  --servers) servers="$2"; shift ;;
  --duplex) duplex_bin="$2"; shift ;;
  --publish) publish="$2"; shift ;;
  --no-install) install=0 ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "hub.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((quick)); then
  rounds=1 duration=2 warmup=1 drain=3
  scale=10 # a tenth of the subscribers (and of the topics in d)
else
  scale=1
fi
[[ "$publish" == http || "$publish" == ws ]] || { echo "hub.sh: --publish is http or ws" >&2; exit 2; }

log() { printf '[hub %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }

# --- file descriptors: 10,000 subscribers on each side -----------------------
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 10200 * 1 / scale)); then
  log "ulimit -n is $(ulimit -n), below the 10,200 the 10,000-subscriber scenarios need"
  exit 1
fi

# --- peers and tools -----------------------------------------------------------
nchan_so=/usr/lib/nginx/modules/ngx_nchan_module.so
if { has "$servers" nchan || has "$servers" nchan-sse; } && { [[ ! -f "$nchan_so" ]] || ! command -v nginx >/dev/null; }; then
  ((install)) || { log "nginx / libnginx-mod-nchan missing (and --no-install)"; exit 1; }
  log "installing nginx and libnginx-mod-nchan"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null
  # The Debian package starts a system nginx on port 80; the benchmark runs
  # its own, so leave that one alone (it does not use our ports).
fi
if has "$servers" socketio && [[ ! -d "$here/node_modules/socket.io" ]]; then
  ((install)) || { log "socket.io missing (and --no-install); run npm install in bench/"; exit 1; }
  log "npm install in bench/ (socket.io, ws)"
  (cd "$here" && npm install --no-audit --no-fund --loglevel=error)
fi

bin="$root/build-bench"
log "building hubload into $bin"
"$here/build.sh" "$bin" >&2
duplex_given=0
[[ -n "$duplex_bin" ]] && duplex_given=1
if { has "$servers" duplex || has "$servers" duplex-sse; } && [[ -z "$duplex_bin" ]]; then
  # A build tree of our own, so that nobody else's rebuild swaps the binary
  # between rounds.
  log "building duplex (Release) in build/bench/"
  cmake -S "$root" -B "$root/build/bench" -DCMAKE_BUILD_TYPE=Release -DDX_BUILD_TESTS=OFF >/dev/null
  cmake --build "$root/build/bench" -j2 --target duplex_cli >/dev/null
  duplex_bin="$root/build/bench/duplex"
fi

# --- results file ------------------------------------------------------------------
mkdir -p "$here/results"
out="${out:-$here/results/hub-$(date +%Y-%m-%d-%H%M%S).txt}"
sio_version=$(node -p "require('$here/node_modules/socket.io/package.json').version" 2>/dev/null || echo -)
{
  echo "# bench/hub.sh raw results, $(date -Is)"
  echo "# rounds=$rounds duration=${duration}s warmup=${warmup}s drain<=${drain}s quick=$quick duplex publish=$publish"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; kernel $(uname -r)"
  if ((duplex_given)); then
    echo "# duplex: $duplex_bin (given with --duplex${DUPLEX_REV:+, built from $DUPLEX_REV}) ${DUPLEX_SERVE_ARGS:-}"
  else
    echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet HEAD -- src app include 2>/dev/null || echo ' (dirty tree)') ${DUPLEX_SERVE_ARGS:-}"
  fi
  echo "# nginx: $(nginx -v 2>&1 | sed 's/.*nginx\///'), nchan: $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo -)"
  echo "# node: $(node --version 2>/dev/null || echo -), socket.io: $sio_version"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: scenario server round json"
} >"$out"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  log "warning: load average is $load on $(nproc) CPUs; wall-clock rates will be noisy"
fi

# --- servers ----------------------------------------------------------------------
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
nchan_prefix=""
cleanup() {
  [[ -n "$server_pid" ]] && stop_pinned
  [[ -n "$nchan_prefix" ]] && rm -rf "$nchan_prefix"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # a port nothing listens on, outside the ephemeral range
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    [[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]] && { echo "$p"; return 0; }
  done
  return 1
}

measure_pid="" # whose CPU time and RSS hubload reads: the server, or nginx's worker
start_server() { # NAME PORT (NAME-sse: the same server)
  local name=${1%-sse} port=$2
  measure_pid=""
  case "$name" in
  duplex)
    # shellcheck disable=SC2086
    start_pinned "$port" "$out.log" "$duplex_bin" serve --host 127.0.0.1 --port "$port" \
      --api-key "$api_key" --log-level warn ${DUPLEX_SERVE_ARGS:-}
    ;;
  nchan)
    rm -rf "$nchan_prefix"
    nchan_prefix="$(mktemp -d /tmp/hub-nchan.XXXXXX)"
    sed -e "s#@PREFIX@#$nchan_prefix#g" -e "s#@PORT@#$port#g" -e "s#@NOFILE@#$(ulimit -n)#g" \
      "$here/peers/nchan.conf" \
      >"$nchan_prefix/nchan.conf"
    start_pinned "$port" "$out.log" nginx -p "$nchan_prefix" -c "$nchan_prefix/nchan.conf" -e stderr || return 1
    # Measure the worker (the master only waits); it is up once the port is.
    for _ in $(seq 50); do
      measure_pid=$(pgrep -P "$server_pid" | head -1) && [[ -n "$measure_pid" ]] && return 0
      sleep 0.1
    done
    false
    ;;
  socketio)
    start_pinned "$port" "$out.log" node "$here/peers/socketio_hub.mjs" --host 127.0.0.1 --port "$port"
    ;;
  esac && { measure_pid="${measure_pid:-$server_pid}"; return 0; }
  log "$name did not start listening on port $port (see $out.log)"
  return 1
}

stop_server() { stop_pinned "$1"; }

scenario_args() { # SCENARIO -> hubload arguments
  case "$1" in
  a) echo "--subscribers $((10000 / scale)) --topics 1 --rate 100" ;;
  b) echo "--subscribers $((10000 / scale)) --topics 1 --rate 1000" ;;
  c) echo "--subscribers $((1000 / scale)) --topics 1 --rate 1000" ;;
  d) echo "--subscribers $((10000 / scale)) --topics $((1000 / scale)) --rate 1000" ;;
  e) echo "--subscribers $((1000 / scale)) --topics 1 --rate 100" ;;
  esac
}

dialect_args() { # SERVER
  case "$1" in
  duplex) echo "--dialect duplex --api-key $api_key --publish $publish" ;;
  duplex-sse) echo "--dialect duplex --api-key $api_key --publish $publish --transport sse" ;;
  nchan-sse) echo "--dialect nchan --transport sse" ;;
  *) echo "--dialect $1" ;;
  esac
}

# run_hubload SERVER PORT ARGS... -> the JSON line on stdout; bounded in time.
run_hubload() {
  local srv=$1 port=$2
  shift 2
  local limit
  limit=$(awk -v w="$warmup" -v d="$duration" -v r="$drain" 'BEGIN { print int(120 + 1 + w + d + r + 30) }')
  # shellcheck disable=SC2046
  timeout -k 5 "$limit" taskset -c 1 "$bin/hubload" --port "$port" $(dialect_args "$srv") \
    --server-pid "$measure_pid" --json "$@" 2>>"$out.log"
}

IFS=, read -ra scen_list <<<"$scenarios"
IFS=, read -ra srv_list <<<"$servers"

# --- preflight: every server must fan out correctly before it is measured -------
ok_servers=()
for srv in "${srv_list[@]}"; do
  port=$(free_port)
  start_server "$srv" "$port" || { log "$srv: skipped (does not start)"; continue; }
  json=$(run_hubload "$srv" "$port" --subscribers 40 --topics 4 --rate 200 --duration 1 \
    --warmup 0.5 --drain 5 --settle 0.2) || true
  stop_server "$port"
  [[ -n "$json" ]] || json='{"failed":"no result"}'
  if python3 -c '
import json, sys
d = json.loads(sys.argv[1])
bad = d.get("failed") or d["loss"] or d["dups"] or d["misrouted"] or d["reorders"] or d["closed_subs"] or d["pub_errors"] or d["unanswered"]
sys.exit(1 if bad else 0)' "$json" 2>/dev/null; then
    log "$srv fans out correctly (40 subscribers, 4 topics: no loss, duplicate, reordering or misrouting)"
    ok_servers+=("$srv")
  else
    log "$srv FAILED the fan-out check and is left out: $json (see $out.log)"
    echo "# preflight $srv failed: $json" >>"$out"
  fi
done
((${#ok_servers[@]})) || { log "no server passed the check"; exit 1; }
srv_list=("${ok_servers[@]}")

total=$((${#scen_list[@]} * rounds * ${#srv_list[@]})) done_runs=0
log "$total runs: scenarios $scenarios, servers ${srv_list[*]}, $rounds rounds, ${duration}s each; raw results in $out"
for sc in "${scen_list[@]}"; do
  [[ -n "$sc" ]] || continue
  for ((r = 1; r <= rounds; r++)); do
    for srv in "${srv_list[@]}"; do
      done_runs=$((done_runs + 1))
      port=$(free_port)
      json=""
      if start_server "$srv" "$port"; then
        # shellcheck disable=SC2046
        json=$(run_hubload "$srv" "$port" $(scenario_args "$sc") --duration "$duration" \
          --warmup "$warmup" --drain "$drain") || log "$srv: hubload failed (scenario $sc round $r)"
        [[ -n "$json" ]] || json='{"failed":"hubload"}'
        kill -0 "$measure_pid" 2>/dev/null || json="${json%\}},\"server_exited\":true}"
        stop_server "$port"
      else
        json='{"failed":"start"}'
      fi
      echo "$sc $srv $r $json" >>"$out"
      log "[$done_runs/$total] $sc round $r $srv: $json"
    done
  done
done

# --- summary: medians per scenario and server, duplex / peer ratios ---------------
summary=$(python3 "$here/hub_summary.py" "$out")
echo "$summary"
{
  echo "# summary (medians)"
  while IFS= read -r line; do echo "# $line"; done <<<"$summary"
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out"
log "raw results and summary: $out; server and hubload stderr: $out.log"
