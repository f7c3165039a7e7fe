#!/usr/bin/env bash
# scale.sh: scale-out on Redis. Publish on node A to subscribers spread over
# three nodes sharing one redis-server, against the same load on one node;
# duplex serve --redis and Socket.IO's Redis adapter side by side.
#
# usage: bench/scale.sh [OPTIONS]
#   --quick            smoke run: 1 round, 2 s, a tenth of the subscribers
#   --rounds R         rounds (each runs every configuration once, in turn;
#                      default 3, or $SCALE_ROUNDS)
#   --duration T       measured seconds of publishing per run (default 6)
#   --warmup T         seconds of publishing before that (default 2)
#   --drain T          at most this long for late deliveries (default 10)
#   --scenarios LIST   comma-separated subset of a,b,c,d (default a,b,c)
#   --configs LIST     comma-separated subset of duplex-1, duplex-1r,
#                      duplex-3, socketio-1, socketio-3 (default all but
#                      duplex-1r)
#   --duplex PATH      use this duplex binary instead of building one
#   --tools DIR        build hubload into DIR (default build-bench/)
#   --no-install       do not npm install missing packages
#   --out FILE         raw results (default bench/results/scale-<date>.txt)
#   -h, --help         this help
#
# Configurations:
#   duplex-1     one duplex serve, the embedded in-memory broker
#   duplex-1r    one duplex serve --redis (the Redis broker's cost alone)
#   duplex-3     three duplex serve --redis nodes on one redis-server
#   socketio-1   one Socket.IO 4 process (bench/peers/socketio_hub.mjs)
#   socketio-3   three Socket.IO nodes on @socket.io/redis-adapter
#                (bench/peers/socketio_cluster.mjs) and one redis-server
# Publications go to node A (POST over 4 pipelined HTTP connections);
# subscriber i connects to node i mod N. Each run starts everything fresh.
#
# Scenarios (64-byte publications, open loop, topics round robin):
#   (a) 10,000 subscribers x 1 topic,        10 publications/s (100,000 deliveries/s)
#   (b) 10,000 subscribers x 1 topic,       100/s (1,000,000 deliveries/s)
#   (c) 10,000 subscribers on 1,000 topics, 1,000/s (10,000 deliveries/s; the
#       Redis round trip of every publication is the cost)
#   (d) 10,000 subscribers x 1 topic,         1/s (10,000 deliveries/s: latency
#       below saturation; give it a longer --duration, e.g. 20)
#
# Pinning: every server process (nodes and redis-server) on CPU 0, hubload
# on CPU 1. Deliveries per server CPU-second are summed over all of them
# (hubload --server-pid, one per process); the JSON has each one's share.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds="${SCALE_ROUNDS:-3}" duration=6 warmup=2 drain=10 quick=0 install=1
scenarios="a,b,c" configs="duplex-1,duplex-3,socketio-1,socketio-3" duplex_bin="" out=""
bin="$root/build-bench"
api_key="scale-bench-key"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --quick) quick=1 ;;
  --rounds) rounds="$2"; shift ;;
  --duration) duration="$2"; shift ;;
  --warmup) warmup="$2"; shift ;;
  --drain) drain="$2"; shift ;;
  --scenarios) scenarios="$2"; shift ;;
  --configs) configs="$2"; shift ;;
  --duplex) duplex_bin="$2"; shift ;;
  --tools) bin="$2"; shift ;;
  --no-install) install=0 ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "scale.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
scale=1
((quick)) && { rounds=1 duration=2 warmup=1 drain=3 scale=10; }

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }
for c in ${configs//,/ }; do
  case "$c" in duplex-1 | duplex-1r | duplex-3 | socketio-1 | socketio-3) ;;
  *) echo "scale.sh: unknown configuration $c" >&2; exit 2 ;;
  esac
done

ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 10200 / scale)); then
  log "ulimit -n is $(ulimit -n), below the 10,200 that 10,000 subscribers need"
  exit 1
fi
command -v redis-server >/dev/null || { log "redis-server missing (scripts/deps.sh installs it)"; exit 1; }
if [[ "$configs" == *socketio* && ! -d "$here/node_modules/@socket.io/redis-adapter" ]]; then
  ((install)) || { log "npm packages missing (and --no-install); run npm ci in bench/"; exit 1; }
  log "npm ci in bench/ (socket.io, @socket.io/redis-adapter, redis)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "building hubload into $bin"
"$here/build.sh" "$bin" >&2
duplex_given=0
[[ -n "$duplex_bin" ]] && duplex_given=1
if [[ "$configs" == *duplex* && -z "$duplex_bin" ]]; then
  log "building duplex (Release) in build/bench/"
  cmake -S "$root" -B "$root/build/bench" -DCMAKE_BUILD_TYPE=Release -DDX_BUILD_TESTS=OFF >/dev/null
  cmake --build "$root/build/bench" -j2 --target duplex_cli >/dev/null
  duplex_bin="$root/build/bench/duplex"
fi

mkdir -p "$here/results"
out="${out:-$here/results/scale-$(date +%Y-%m-%d-%H%M%S).txt}"
ver() { node -p "require('$here/node_modules/$1/package.json').version" 2>/dev/null || echo -; }
{
  echo "# bench/scale.sh raw results, $(date -Is)"
  echo "# rounds=$rounds duration=${duration}s warmup=${warmup}s drain<=${drain}s quick=$quick"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; kernel $(uname -r)"
  if ((duplex_given)); then
    echo "# duplex: $duplex_bin (given with --duplex${DUPLEX_REV:+, built from $DUPLEX_REV})"
  else
    echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet HEAD -- src app include 2>/dev/null || echo ' (dirty tree)')"
  fi
  echo "# redis: $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
  echo "# node: $(node --version 2>/dev/null || echo -), socket.io: $(ver socket.io), @socket.io/redis-adapter: $(ver @socket.io/redis-adapter), redis (npm): $(ver redis)"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: scenario config round json (server_cpu_each_s: nodes A, B, C, then redis-server)"
} >"$out"

# --- processes ------------------------------------------------------------------
pids=() ports=() tmp=$(mktemp -d /tmp/scale-bench.XXXXXX)
stop_all() {
  local p
  for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=() ports=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

free_port() { # a port nothing listens on (nor one this run took), outside the ephemeral range
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    [[ " ${ports[*]+"${ports[*]}"} " == *" $p "* ]] && continue
    [[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]] && { echo "$p"; return 0; }
  done
  return 1
}

# launch PORT CMD...: CMD on CPU 0, stderr into the log; waits (20 s at most)
# until PORT listens.
launch() {
  local port=$1
  shift
  taskset -c 0 "$@" >/dev/null 2>>"$out.log" &
  pids+=("$!") ports+=("$port")
  for _ in $(seq 200); do
    [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  log "$1 did not listen on port $port (see $out.log)"
  return 1
}

# start_config CONFIG: sets node_ports (A first) and server_pids (nodes, then redis).
start_config() {
  local cfg=$1 n=${1#*-} redis_url="" i port
  n=${n%r}
  node_ports=() server_pids=()
  if [[ "$cfg" == *-3 || "$cfg" == *-1r ]]; then
    port=$(free_port)
    launch "$port" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --protected-mode no --dir "$tmp" --logfile "" || return 1
    redis_url="redis://127.0.0.1:$port"
  fi
  for ((i = 0; i < n; i++)); do
    port=$(free_port)
    case "$cfg" in
    duplex-*)
      launch "$port" "$duplex_bin" serve --host 127.0.0.1 --port "$port" --api-key "$api_key" \
        --log-level warn ${redis_url:+--redis "$redis_url"} || return 1
      ;;
    socketio-1)
      launch "$port" node "$here/peers/socketio_hub.mjs" --host 127.0.0.1 --port "$port" || return 1
      ;;
    socketio-3)
      launch "$port" node "$here/peers/socketio_cluster.mjs" --host 127.0.0.1 --port "$port" \
        --redis "$redis_url" || return 1
      ;;
    esac
    node_ports+=("$port")
  done
  # nodes first, then redis-server (launched first)
  if [[ -n "$redis_url" ]]; then
    server_pids=("${pids[@]:1}" "${pids[0]}")
  else
    server_pids=("${pids[@]}")
  fi
}

scenario_args() {
  case "$1" in
  a) echo "--subscribers $((10000 / scale)) --topics 1 --rate 10" ;;
  b) echo "--subscribers $((10000 / scale)) --topics 1 --rate 100" ;;
  c) echo "--subscribers $((10000 / scale)) --topics $((1000 / scale)) --rate 1000" ;;
  d) echo "--subscribers $((10000 / scale)) --topics 1 --rate 1" ;;
  esac
}

# run_hubload CONFIG ARGS... -> the JSON line; bounded in time.
run_hubload() {
  local cfg=$1 dialect=${1%-*} ports_csv pid_args=() p
  shift
  ports_csv=$(IFS=,; echo "${node_ports[*]}")
  for p in "${server_pids[@]}"; do pid_args+=(--server-pid "$p"); done
  local limit
  limit=$(awk -v w="$warmup" -v d="$duration" -v r="$drain" 'BEGIN { print int(120 + 1 + w + d + r + 30) }')
  local extra=()
  [[ "$dialect" == duplex ]] && extra=(--api-key "$api_key")
  timeout -k 5 "$limit" taskset -c 1 "$bin/hubload" --port "${node_ports[0]}" \
    --sub-ports "$ports_csv" --dialect "$dialect" "${extra[@]}" "${pid_args[@]}" --json "$@" \
    2>>"$out.log"
}

IFS=, read -ra scen_list <<<"$scenarios"
IFS=, read -ra cfg_list <<<"$configs"

# --- preflight: each configuration fans out correctly across its nodes ----------
ok_cfgs=()
for cfg in "${cfg_list[@]}"; do
  json=""
  if start_config "$cfg"; then
    json=$(run_hubload "$cfg" --subscribers 60 --topics 6 --rate 200 --duration 1 \
      --warmup 0.5 --drain 5 --settle 0.2) || true
  fi
  stop_all
  [[ -n "$json" ]] || json='{"failed":"no result"}'
  if python3 -c '
import json, sys
d = json.loads(sys.argv[1])
bad = d.get("failed") or d["loss"] or d["dups"] or d["misrouted"] or d["reorders"] or d["closed_subs"] or d["pub_errors"] or d["unanswered"]
sys.exit(1 if bad else 0)' "$json" 2>/dev/null; then
    log "$cfg fans out correctly (60 subscribers over its nodes, 6 topics: nothing lost, duplicated, reordered or misrouted)"
    ok_cfgs+=("$cfg")
  else
    log "$cfg FAILED the fan-out check and is left out: $json (see $out.log)"
    echo "# preflight $cfg failed: $json" >>"$out"
  fi
done
((${#ok_cfgs[@]})) || { log "no configuration passed the check"; exit 1; }
cfg_list=("${ok_cfgs[@]}")

total=$((${#scen_list[@]} * rounds * ${#cfg_list[@]})) done_runs=0
log "$total runs: scenarios $scenarios, configurations ${cfg_list[*]}, $rounds rounds, ${duration}s each; raw results in $out"
for sc in "${scen_list[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    for cfg in "${cfg_list[@]}"; do
      done_runs=$((done_runs + 1))
      json=""
      if start_config "$cfg"; then
        # shellcheck disable=SC2046
        json=$(run_hubload "$cfg" $(scenario_args "$sc") --duration "$duration" \
          --warmup "$warmup" --drain "$drain") || log "$cfg: hubload failed (scenario $sc round $r)"
        [[ -n "$json" ]] || json='{"failed":"hubload"}'
        for p in "${server_pids[@]}"; do
          kill -0 "$p" 2>/dev/null || { json="${json%\}},\"server_exited\":true}"; break; }
        done
      else
        json='{"failed":"start"}'
      fi
      stop_all
      echo "$sc $cfg $r $json" >>"$out"
      log "[$done_runs/$total] $sc round $r $cfg: $json"
    done
  done
done

summary=$(python3 "$here/scale_summary.py" "$out")
echo "$summary"
{
  echo "# summary (medians)"
  while IFS= read -r line; do echo "# $line"; done <<<"$summary"
  echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out"
log "raw results and summary: $out; server and hubload stderr: $out.log"
