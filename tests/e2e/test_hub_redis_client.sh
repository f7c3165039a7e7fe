#!/usr/bin/env bash
# The hub's Redis client (src/hub/redis_client.c) against real redis-server instances started on
# loopback ports by tests/lib.sh: pipelining, pub/sub pushes (sharded too), AUTH, SELECT, a
# killed and restarted server, a reply timeout, TLS, a Sentinel failover, a 3-master cluster.
# The checks are in redis_client_check.c; this script runs the servers and the faults.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis
check_bin="$DX_BUILD_DIR/tests/redis_client_check"
[[ -x "$check_bin" ]] || fail "no $check_bin (build the tests)"

only=${DX_REDIS_CASES:-basic reentry names pubsub auth restart timeout tls sentinel sentinel-auth cluster}
want() { [[ " $only " == *" $1 "* ]]; }

if want basic || want reentry || want names || want pubsub || want timeout; then
  start_redis
  want basic && run_helper basic "$check_bin" basic "$REDIS_URL/3"
  want reentry && run_helper reentry "$check_bin" reentry "$REDIS_URL"
  want names && run_helper names "$check_bin" names "$REDIS_PORT"
  want pubsub && run_helper pubsub "$check_bin" pubsub "$REDIS_URL"
  want timeout && run_helper timeout "$check_bin" timeout "$REDIS_URL"
fi

if want auth; then
  start_redis --password 's3cret:@x' --user alice on '>alice pw' '~*' '&*' '+@all'
  run_helper auth "$check_bin" auth "$REDIS_URL" \
    "redis://:wrong@127.0.0.1:$REDIS_PORT" "redis://127.0.0.1:$REDIS_PORT"
  # An ACL user (AUTH user password), and a wrong password for it.
  run_helper acl "$check_bin" auth "redis://alice:alice%20pw@127.0.0.1:$REDIS_PORT" \
    "redis://alice:nope@127.0.0.1:$REDIS_PORT" "redis://127.0.0.1:$REDIS_PORT"
fi

if want restart; then
  start_redis
  port=$REDIS_PORT
  out="$DX_TMP/restart.out"
  "$check_bin" restart "$REDIS_URL" >"$out" 2>&1 &
  helper=$!
  wait_for 10 grep -q '^up 1' "$out" || fail "restart: the client did not come up: $(cat "$out")"
  stop_redis "$port"
  wait_for 10 grep -q '^down' "$out" || fail "restart: no on_down after the kill: $(cat "$out")"
  sleep 0.5 # a few failed attempts while it is down
  restart_redis "$port"
  wait_gone "$helper" 20 || fail "restart: the client did not finish within 20 s: $(cat "$out")"
  rc=0
  wait "$helper" || rc=$?
  tally_helper restart "$rc" "$out"
  # One log line for the drop, one for the first refused attempt; the retries are not logged.
  attempts=$(grep -oE '\(([0-9]+) failed attempts while down' "$out" | grep -oE '[0-9]+' || echo 0)
  lines=$(grep -c 'cannot connect' "$out" || true)
  if ((attempts >= 2 && lines == 1)); then
    pass "restart: $attempts failed attempts, 1 log line"
  else
    check_fail "restart: $attempts failed attempts, $lines 'cannot connect' lines (want 1, attempts >= 2)"
  fi
fi

if want tls; then
  start_redis --tls
  run_helper tls "$check_bin" tls "$REDIS_URL" "rediss://127.0.0.1:$REDIS_PORT"
fi

if want sentinel; then
  start_sentinel 3
  run_helper sentinel "$check_bin" sentinel "$SENTINEL_URL" "${SENTINEL_PORTS[0]}" \
    "$SENTINEL_MASTER_PORT" "$SENTINEL_REPLICA_PORT"
  # Now kill whichever is master: the sentinels promote the other (down-after 1 s).
  out="$DX_TMP/master-killed.out"
  "$check_bin" master-killed "$SENTINEL_URL" >"$out" 2>&1 &
  helper=$!
  wait_for 10 grep -q '^up [0-9]' "$out" || fail "master-killed: the client did not come up: $(cat "$out")"
  master=$(grep -m1 -oE '^up [0-9]+' "$out" | cut -d' ' -f2)
  stop_redis "$master"
  wait_gone "$helper" 40 || fail "master-killed: the client did not finish within 40 s: $(cat "$out")"
  rc=0
  wait "$helper" || rc=$?
  tally_helper master-killed "$rc" "$out"
fi

if want sentinel-auth; then
  start_sentinel 1 --password 'sp w'
  base=${SENTINEL_URL%%\?*}
  run_helper sentinel-auth "$check_bin" sentinel-auth "$SENTINEL_URL" "$base?sentinel_password=nope" \
    "$base"
fi

if want cluster; then
  start_redis_cluster
  run_helper cluster "$check_bin" cluster "$CLUSTER_URL"
fi
finish
