#!/usr/bin/env bash
# Smoke run of the fan-out benchmark's tools (bench/hubload.c,
# bench/hub_summary.py) against duplex serve, so they cannot rot: WebSocket
# and SSE subscribers both receive every publication, in order, with the
# latency and CPU figures filled in, and the summary compares the two.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

bin="$DX_TMP/bench"
"$DX_SOURCE_DIR/bench/build.sh" "$bin" >"$DX_TMP/build.out" 2>&1 ||
  fail "bench/build.sh failed: $(tail -5 "$DX_TMP/build.out")"
pass "bench/build.sh builds hubload"

start_serve --api-key benchkey
results="$DX_TMP/results.txt"
: >"$results"

# check_run TRANSPORT: 60 subscribers on 3 topics, 300 publications/s for 1 s.
check_run() {
  local transport=$1 json rc=0
  json=$(timeout 60 "$bin/hubload" --port "$PORT" --dialect duplex --api-key benchkey \
    --transport "$transport" --subscribers 60 --topics 3 --rate 300 --duration 1 --warmup 0.3 \
    --drain 5 --settle 0.1 --server-pid "$SERVE_PID" --json 2>"$DX_TMP/hubload-$transport.err") ||
    rc=$?
  if ((rc)); then
    check_fail "$transport: hubload exited $rc: $(tail -3 "$DX_TMP/hubload-$transport.err")"
    return
  fi
  local why
  why=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
bad = [k for k in ("loss", "dups", "reorders", "misrouted", "closed_subs", "pub_errors",
                   "unanswered", "errors", "unknown_msgs") if d[k]]
if d["transport"] != sys.argv[2]: bad.append("transport " + d["transport"])
# a smoke test, not a timed one: on a busy machine the publisher may offer
# fewer than asked; what it offered must all arrive (a tenth is plenty)
if d["expected"] < 60 * 300 / 30 or d["delivered"] != d["expected"]: bad.append("delivered")
if not 0 < d["p50_us"] <= d["p99_us"]: bad.append("latency")
if d["deliveries_per_server_cpu_s"] <= 0: bad.append("per CPU-s")
print(" ".join(bad))' "$json" "$transport" 2>&1) || why="bad JSON: $json ($why)"
  if [[ -z "$why" ]]; then
    pass "$transport subscribers: every publication delivered once, in order, latency measured"
  else
    check_fail "$transport subscribers: $why in $json"
  fi
  local name=duplex
  [[ "$transport" == sse ]] && name=duplex-sse
  echo "e $name 1 $json" >>"$results"
}
check_run ws
check_run sse

summary=$(python3 "$DX_SOURCE_DIR/bench/hub_summary.py" "$results" 2>&1)
grep -q '^| duplex-sse | 1 | ' <<<"$summary" && grep -q 'duplex-sse / server, per CPU-s' <<<"$summary" &&
  pass "hub_summary.py compares WebSocket and SSE subscribers" ||
  check_fail "hub_summary.py: $summary"

rc=0
"$bin/hubload" --dialect socketio --transport sse >/dev/null 2>&1 || rc=$?
((rc == 2)) && pass "--transport sse with socketio is a usage error" ||
  check_fail "socketio + sse exited $rc"
rc=0
"$bin/hubload" --dialect duplex --transport carrier-pigeon >/dev/null 2>"$DX_TMP/bad.err" || rc=$?
((rc != 0)) && grep -q 'transport is ws or sse' "$DX_TMP/bad.err" &&
  pass "an unknown --transport is refused" || check_fail "bad --transport: rc $rc"
bash -n "$DX_SOURCE_DIR/bench/hub.sh" && "$DX_SOURCE_DIR/bench/hub.sh" --help | grep -q duplex-sse &&
  pass "hub.sh parses and its help names duplex-sse" || check_fail "hub.sh --help"
finish
