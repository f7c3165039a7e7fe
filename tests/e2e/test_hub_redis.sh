#!/usr/bin/env bash
# duplex serve scaled out on a real Redis (issue 14): two nodes (one with two
# loops), publications across nodes, resume on the other node, history from
# Redis, a broken subscriber connection, Redis killed and started again.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
start_redis
rport=$REDIS_PORT
opts=(--redis "$REDIS_URL" --api-key rkey --history-size 1000 --presence-ttl 3s)
start_serve "${opts[@]}"
a=$PORT
start_serve "${opts[@]}" --threads 2
b=$PORT
start_serve "${opts[@]}" # node C, killed mid-test
c=$PORT
cpid=$SERVE_PID

# The helper asks for Redis to be stopped and started, and node C to die
# (a death this script did not cause would fail the test): CTL/kill ->
# CTL/killed, CTL/start -> CTL/started, CTL/killnode -> CTL/nodekilled.
ctl="$DX_TMP/ctl"
mkdir -p "$ctl"
out="$DX_TMP/hub_redis.out"
node "$DX_SOURCE_DIR/tests/interop/hub_redis.mjs" "$a" "$b" "$rport" rkey "$ctl" "$c" >"$out" 2>&1 &
helper=$!
while kill -0 "$helper" 2>/dev/null; do
  if [[ -f "$ctl/kill" ]]; then
    rm -f "$ctl/kill"
    stop_redis "$rport"
    touch "$ctl/killed"
  fi
  if [[ -f "$ctl/killnode" ]]; then
    rm -f "$ctl/killnode"
    kill -KILL "$cpid"
    reap_server "$cpid" || true
    touch "$ctl/nodekilled"
  fi
  if [[ -f "$ctl/start" ]]; then
    rm -f "$ctl/start"
    restart_redis "$rport"
    touch "$ctl/started"
  fi
  sleep 0.05
done
rc=0
wait "$helper" || rc=$?
tally_helper "redis helper" "$rc" "$out"
finish
