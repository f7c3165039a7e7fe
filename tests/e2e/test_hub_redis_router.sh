#!/usr/bin/env bash
# The hub's Redis router (src/hub/redis_router.c) against real redis-server instances started on
# loopback ports by tests/lib.sh: one Redis (redis://, a pass-through), and a 3-master cluster —
# keys land where CLUSTER KEYSLOT says (checked here with redis-cli), MOVED and ASK followed,
# sharded pub/sub from all three shards, a killed and restarted master, a master failed over to
# its replica, masters with a password, a TLS cluster. The checks are in
# redis_router_check.c; this script runs the servers and the faults.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis
check_bin="$DX_BUILD_DIR/tests/redis_router_check"
[[ -x "$check_bin" ]] || fail "no $check_bin (build the tests)"

only=${DX_ROUTER_CASES:-single cluster kill failover auth tls}
want() { [[ " $only " == *" $1 "* ]]; }

if want single; then
  start_redis
  run_helper single "$check_bin" single "$REDIS_URL"
fi

# owner_port KEY: the port of the master that CLUSTER NODES gives KEY's slot (CLUSTER KEYSLOT).
owner_port() {
  local slot line range
  slot=$(rcli "${CLUSTER_PORTS[0]}" CLUSTER KEYSLOT "$1")
  while read -r line; do
    [[ "$line" == *master* ]] || continue
    set -- $line
    local addr=$2
    shift 8
    for range in "$@"; do
      [[ "$range" == \[* ]] && continue # a slot being migrated
      local lo=${range%-*} hi=${range#*-}
      if ((slot >= lo && slot <= hi)); then
        addr=${addr%%@*}
        echo "${addr##*:}"
        return 0
      fi
    done
  done < <(rcli "${CLUSTER_PORTS[0]}" CLUSTER NODES)
  return 1
}

if want cluster || want kill || want failover || want auth; then
  start_redis_cluster
fi

# cluster_case LABEL: redis_router_check cluster against CLUSTER_URL, then every key it wrote is
# on the master CLUSTER KEYSLOT + CLUSTER NODES name, with its value, and all three hold some.
cluster_case() {
  local label=$1 keys="$DX_TMP/router-keys.$1.txt" key val port got bad=0 n=0
  local -A seen=()
  run_helper "$label" "$check_bin" cluster "$CLUSTER_URL" "$keys"
  while read -r key val; do
    n=$((n + 1))
    port=$(owner_port "$key") || {
      bad=$((bad + 1))
      continue
    }
    got=$(rcli "$port" GET "$key")
    if [[ "$got" != "$val" ]]; then
      log "key $key: '$got' on $port (want '$val')"
      bad=$((bad + 1))
    fi
    seen[$port]=1
  done <"$keys"
  if ((n == 60 && bad == 0 && ${#seen[@]} == 3)); then
    pass "$label: redis-cli: the 60 keys are where CLUSTER KEYSLOT says, on all 3 masters"
  else
    check_fail "$label: redis-cli: $n keys, $bad misplaced, on ${#seen[@]} masters"
  fi
}

want cluster && cluster_case cluster

if want kill; then
  # The master of "victim" is killed; once both routers said down and the others answered
  # CLUSTERDOWN, it is started again.
  out="$DX_TMP/router-kill.out"
  "$check_bin" kill "$CLUSTER_URL" >"$out" 2>&1 &
  helper=$!
  wait_for 15 grep -q '^up [0-9]' "$out" || fail "kill: the routers did not come up: $(cat "$out")"
  victim=$(grep -m1 -oE '^up [0-9]+' "$out" | cut -d' ' -f2)
  stop_redis "$victim"
  wait_for 20 grep -q '^down' "$out" || fail "kill: no on_down after the kill: $(cat "$out")"
  wait_for 30 grep -q '^restart' "$out" || fail "kill: the CLUSTERDOWN check did not end: $(cat "$out")"
  restart_redis "$victim"
  wait_gone "$helper" 60 || fail "kill: the helper did not finish within 60 s: $(cat "$out")"
  rc=0
  wait "$helper" || rc=$?
  tally_helper kill "$rc" "$out"
fi
# start_cluster_replica MASTER_PORT: a fourth node, joined to the cluster as MASTER_PORT's replica
# (synced): REPLICA_PORT.
start_cluster_replica() {
  local master=$1 port="" try a mid
  for try in 1 2 3 4 5; do
    port=$(free_port --bus)
    DX_REDIS_ARGS[$port]=$(printf '%q ' --port "$port" --save "" --appendonly no --protected-mode no \
      --cluster-enabled yes --cluster-config-file "$DX_TMP/redis.$port/nodes.conf" \
      --cluster-node-timeout 2000 --enable-debug-command local)
    eval "a=(${DX_REDIS_ARGS[$port]})"
    _redis_launch "$port" "${a[@]}" && break
    port=""
  done
  [[ -n "$port" ]] || fail "the replica node would not start"
  rcli "$port" CLUSTER MEET 127.0.0.1 "$master" >/dev/null || fail "CLUSTER MEET failed"
  mid=$(rcli "$master" CLUSTER MYID)
  wait_for 20 _replicate "$port" "$mid" || fail "CLUSTER REPLICATE $mid refused for 20 s"
  wait_for 20 _link_up "$port" || fail "the replica on $port did not sync within 20 s"
  REPLICA_PORT=$port
  log "replica $port of master $master"
}
_replicate() { rcli "$1" CLUSTER REPLICATE "$2" | grep -q OK; }
_link_up() { rcli "$1" INFO replication | grep -q '^master_link_status:up'; }

if want failover; then
  master=$(owner_port failover) || fail "no owner for key 'failover'"
  start_cluster_replica "$master"
  out="$DX_TMP/router-failover.out"
  "$check_bin" failover "$CLUSTER_URL" >"$out" 2>&1 &
  helper=$!
  wait_for 15 grep -q '^up [0-9]' "$out" || fail "failover: the routers did not come up: $(cat "$out")"
  [[ "$(grep -m1 -oE '^up [0-9]+' "$out" | cut -d' ' -f2)" == "$master" ]] ||
    fail "failover: the router and CLUSTER NODES disagree on the master of 'failover'"
  stop_redis "$master"
  wait_gone "$helper" 60 || fail "failover: the helper did not finish within 60 s: $(cat "$out")"
  rc=0
  wait "$helper" || rc=$?
  tally_helper failover "$rc" "$out"
  if grep -q "^owner $REPLICA_PORT\$" "$out"; then
    pass "failover: the router's new master is the replica ($REPLICA_PORT)"
  else
    check_fail "failover: want owner $REPLICA_PORT: $(grep '^owner' "$out")"
  fi
fi
if want auth; then
  # Every live node gets a password (the cluster bus does not use it); the seeds keep the dead
  # master of the failover case first, so the control connection moves on.
  pw='cl pw'
  for port in "${CLUSTER_PORTS[@]}" ${REPLICA_PORT:-}; do
    [[ -n "${DX_REDIS_PID[$port]:-}" ]] || continue
    rcli "$port" CONFIG SET requirepass "$pw" >/dev/null || fail "CONFIG SET requirepass on $port"
    DX_REDIS_PASS[$port]=$pw
  done
  hosts=${CLUSTER_URL#redis+cluster://}
  run_helper auth "$check_bin" auth "redis+cluster://:$(urlenc "$pw")@$hosts" \
    "redis+cluster://:nope@$hosts"
fi
# TLS: a cluster that speaks TLS only (clients and bus); rediss+cluster:// with ?ca=.
if want tls; then
  start_redis_cluster --tls
  cluster_case tls
fi
finish
