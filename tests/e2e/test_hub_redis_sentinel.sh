#!/usr/bin/env bash
# duplex serve nodes on Redis Sentinel (issue 14): two nodes, subscribers on
# both, a steady publisher, then a manual failover (SENTINEL FAILOVER) and
# the new master killed (the sentinels promote the old one back) mid-stream.
# The nodes must survive and follow the master; subscribers see no duplicate,
# no reordering, and no silent loss: an acknowledged publication that the
# failover lost (asynchronous replication) is covered by a gap notice.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
start_sentinel 1
sport=${SENTINEL_PORTS[0]}
start_serve --redis "$SENTINEL_URL" --api-key skey --history-size 1000
a=$PORT
start_serve --redis "$SENTINEL_URL" --api-key skey --history-size 1000 --threads 2
b=$PORT

# The helper asks for the faults (CTL/failover, CTL/kill -> CTL/done.<what>);
# this script does them, so that the killed master is not taken for a crash.
ctl="$DX_TMP/ctl"
mkdir -p "$ctl"
master_moved_from() {
  local now
  now=$(sentinel_master_port "$sport")
  [[ -n "$now" && "$now" != "$1" ]]
}
out="$DX_TMP/hub_redis_sentinel.out"
node "$DX_SOURCE_DIR/tests/interop/hub_redis_sentinel.mjs" "$a" "$b" skey "$ctl" >"$out" 2>&1 &
helper=$!
while kill -0 "$helper" 2>/dev/null; do
  if [[ -f "$ctl/failover" ]]; then
    rm -f "$ctl/failover"
    old=$(sentinel_master_port "$sport")
    rcli "$sport" SENTINEL FAILOVER "$SENTINEL_NAME" >/dev/null
    wait_for 20 master_moved_from "$old" || fail "SENTINEL FAILOVER: the master did not change within 20 s"
    log "failover: master $old -> $(sentinel_master_port "$sport")"
    touch "$ctl/done.failover"
  fi
  if [[ -f "$ctl/kill" ]]; then
    rm -f "$ctl/kill"
    old=$(sentinel_master_port "$sport")
    # The demoted master must be in sync first, or there is nobody to promote.
    other=$SENTINEL_MASTER_PORT
    [[ $old == "$other" ]] && other=$SENTINEL_REPLICA_PORT
    wait_for 20 _redis_link_up "$other" || fail "replica $other did not sync with master $old within 20 s"
    stop_redis "$old"
    wait_for 20 master_moved_from "$old" || fail "master $old killed: no new master within 20 s"
    log "master $old killed: new master $(sentinel_master_port "$sport")"
    touch "$ctl/done.kill"
  fi
  sleep 0.05
done
rc=0
wait "$helper" || rc=$?
tally_helper "sentinel helper" "$rc" "$out"
finish
