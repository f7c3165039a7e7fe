#!/usr/bin/env bash
# duplex serve nodes on one real Redis, under faults (issue 14): SSE and
# long-poll subscribers resuming across nodes; Redis paused (SIGSTOP) past the
# reply timeout and resumed; Redis restarted from an older dump; a node
# killed with SIGKILL mid-stream, its clients resuming on the other node.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
start_redis
rport=$REDIS_PORT
start_serve --redis "$REDIS_URL" --api-key fkey --history-size 1000
a=$PORT
a_pid=$SERVE_PID
start_serve --redis "$REDIS_URL" --api-key fkey --history-size 1000 --threads 2
b=$PORT
b_log=$SERVE_LOG

# The helper asks for the faults: CTL/<what> -> CTL/done.<what>.
ctl="$DX_TMP/ctl"
mkdir -p "$ctl"
out="$DX_TMP/hub_redis_faults.out"
node "$DX_SOURCE_DIR/tests/interop/hub_redis_faults.mjs" "$a" "$b" fkey "$ctl" >"$out" 2>&1 &
helper=$!
stopped=""
while kill -0 "$helper" 2>/dev/null; do
  for what in stop cont save restart killnode; do
    [[ -f "$ctl/$what" ]] || continue
    rm -f "$ctl/$what"
    case $what in
    stop) kill -STOP "${DX_REDIS_PID[$rport]}" && stopped=1 ;;
    cont) kill -CONT "${DX_REDIS_PID[$rport]}" && stopped="" ;;
    save) rcli "$rport" SAVE >/dev/null ;;
    restart)
      stop_redis "$rport"
      restart_redis "$rport"
      ;;
    killnode)
      kill -KILL "$a_pid"
      reap_server "$a_pid" || true
      ;;
    esac
    touch "$ctl/done.$what"
  done
  sleep 0.05
done
[[ -n "$stopped" ]] && kill -CONT "${DX_REDIS_PID[$rport]}"
rc=0
wait "$helper" || rc=$?
tally_helper "faults helper" "$rc" "$out"
# Node B said why it dropped Redis while it was paused, on both kinds of
# connection.
for what in 'redis: connection lost (reply timed out' 'redis: subscriber connection lost (reply timed out'; do
  if grep -qF "$what" "$b_log"; then
    pass "node B logged '$what'"
  else
    check_fail "node B did not log '$what': $(grep -i 'lost' "$b_log" | head -n 5)"
  fi
done
finish
