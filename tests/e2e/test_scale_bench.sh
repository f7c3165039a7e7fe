#!/usr/bin/env bash
# Smoke run of the scale-out benchmark (bench/scale.sh) so it cannot rot:
# hubload spreads subscribers over three duplex serve --redis nodes with
# --sub-ports and sums CPU over the nodes and redis-server (one figure per
# process in server_cpu_each_s); every publication on node A reaches every
# subscriber once, in order; scale.sh itself runs a tiny round of duplex-1
# and duplex-3 and scale_summary.py tables it. (The Socket.IO peers need
# bench/node_modules, which the benchmark installs; only their syntax is
# checked here.)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis

bin="$DX_TMP/bench"
"$DX_SOURCE_DIR/bench/build.sh" "$bin" >"$DX_TMP/build.out" 2>&1 ||
  fail "bench/build.sh failed: $(tail -5 "$DX_TMP/build.out")"
pass "bench/build.sh builds hubload"

start_redis
redis_pid=$REDIS_PID
ports=() pids=()
for _ in 1 2 3; do
  start_serve --redis "$REDIS_URL" --api-key scalekey
  ports+=("$PORT") pids+=("$SERVE_PID")
done
json=$(timeout 60 "$bin/hubload" --port "${ports[0]}" --sub-ports "$(IFS=,; echo "${ports[*]}")" \
  --dialect duplex --api-key scalekey --subscribers 90 --topics 9 --rate 300 --duration 1 \
  --warmup 0.3 --drain 5 --settle 0.1 --server-pid "$(IFS=,; echo "${pids[*]}")" \
  --server-pid "$redis_pid" --json 2>"$DX_TMP/hubload.err") ||
  check_fail "hubload exited $?: $(tail -3 "$DX_TMP/hubload.err")"
why=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
bad = [k for k in ("loss", "dups", "reorders", "misrouted", "closed_subs", "pub_errors",
                   "unanswered", "errors", "unknown_msgs") if d[k]]
if d["nodes"] != 3: bad.append("nodes")
if d["expected"] < 90 * 300 / 9 or d["delivered"] != d["expected"]: bad.append("delivered")
each = d["server_cpu_each_s"]
if len(each) != 4 or min(each) < 0 or abs(sum(each) - d["server_cpu_s"]) > 0.011: bad.append("cpu each")
if not 0 < d["p50_us"] <= d["p99_us"]: bad.append("latency")
print(" ".join(bad))' "$json" 2>&1) || why="bad JSON: $json ($why)"
[[ -z "$why" ]] && pass "3 nodes on Redis: every publication on node A delivered once, in order; CPU per process" ||
  check_fail "$why in $json"
spread=1
for p in "${ports[@]}"; do # each node delivered to its 30 subscribers
  n=$(curl -s --max-time 5 "http://127.0.0.1:$p/metrics" | awk '/^duplex_messages_sent_total/ { s += $NF } END { print s + 0 }')
  ((n >= 30 * 300 / 9)) || { spread=0; check_fail "node $p sent only $n messages"; }
done
((spread)) && pass "subscribers spread over the three nodes (each sent its share)"

rc=0
"$bin/hubload" --dialect duplex --sub-ports 1,x >/dev/null 2>"$DX_TMP/bad.err" || rc=$?
((rc != 0)) && grep -q 'bad --sub-ports' "$DX_TMP/bad.err" && pass "a bad --sub-ports is refused" ||
  check_fail "bad --sub-ports: rc $rc"

out="$DX_TMP/scale.txt"
rc=0
timeout -k 5 240 "$DX_SOURCE_DIR/bench/scale.sh" --quick --scenarios c --configs duplex-1,duplex-3 \
  --duration 1 --drain 3 --duplex "$DUPLEX" --tools "$bin" --no-install --out "$out" >"$DX_TMP/scale.out" 2>&1 || rc=$?
if ((rc == 0)) && grep -q '^| duplex-3 | 1 | ' "$DX_TMP/scale.out" && grep -q '^c duplex-1 1 {' "$out"; then
  pass "scale.sh --quick runs duplex-1 and duplex-3 and prints the table"
else
  check_fail "scale.sh exited $rc: $(tail -20 "$DX_TMP/scale.out")"
fi
grep -q '"failed"' "$out" && check_fail "a run failed: $(grep failed "$out")"
"$DX_SOURCE_DIR/bench/scale.sh" --help | grep -q socketio-3 && pass "scale.sh --help names socketio-3" ||
  check_fail "scale.sh --help"
node --check "$DX_SOURCE_DIR/bench/peers/socketio_cluster.mjs" && pass "socketio_cluster.mjs parses" ||
  check_fail "socketio_cluster.mjs does not parse"
finish
