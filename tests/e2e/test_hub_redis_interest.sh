#!/usr/bin/env bash
# The Redis broker's interest in a topic is balanced on every path: a
# subscribe whose client went away before Redis answered (a poll answered
# at once with timeout=0, here) gives its interest back, so the node
# unsubscribes from the topic's channel instead of keeping it for ever; and
# a node that shuts down while a subscribe still waits for Redis exits
# cleanly (the wait is dropped after its loop is gone).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis
start_redis
rport=$REDIS_PORT
start_serve --redis "$REDIS_URL"
a=$PORT

numsub() { rcli "$rport" PUBSUB NUMSUB "duplex:{$1}" | tr -d '\r' | sed -n 2p; }
unsubscribed() { [[ $(numsub "$1") == 0 ]]; }
subscribed() { [[ $(numsub "$1") == 1 ]]; }
wait_for 10 rcli "$rport" PING || fail "redis does not answer"
wait_for 10 curl -fsS "http://127.0.0.1:$a/readyz" || fail "node not ready"

# A long poll that is still waiting holds its topic: the check sees a subscription.
curl -sS -m 20 "http://127.0.0.1:$a/poll?topics=held&timeout=3" >/dev/null &
held=$!
if wait_for 5 subscribed held; then
  pass "a waiting long poll keeps the node subscribed to its topic"
else
  check_fail "a waiting long poll: PUBSUB NUMSUB is '$(numsub held)', expected 1"
fi
wait "$held" || true
if wait_for 5 unsubscribed held; then
  pass "once the poll is answered the node unsubscribes"
else
  check_fail "after the long poll: PUBSUB NUMSUB is '$(numsub held)', expected 0"
fi

# Polls answered before Redis confirmed their subscribes.
for i in 1 2 3; do
  curl -fsS -m 5 "http://127.0.0.1:$a/poll?topics=gone$i&timeout=0" >/dev/null ||
    check_fail "poll $i failed"
done
sleep 1 # the subscribes complete (to nobody) meanwhile
for i in 1 2 3; do
  if wait_for 5 unsubscribed "gone$i"; then
    pass "a subscribe whose poll was answered first gives its interest back (gone$i)"
  else
    check_fail "gone$i: PUBSUB NUMSUB is '$(numsub "gone$i")' 5 s after its poll was answered"
  fi
done

# Redis stops answering; a subscribe waits (up to 5 s) when the node stops.
start_serve --redis "$REDIS_URL" --threads 2
b=$PORT
bpid=$SERVE_PID
blog=$SERVE_LOG
wait_for 10 curl -fsS "http://127.0.0.1:$b/readyz" || fail "node B not ready"
kill -STOP "$REDIS_PID"
polls=()
for i in 1 2 3 4; do
  curl -sS -m 10 "http://127.0.0.1:$b/poll?topics=shut$i&timeout=8" >/dev/null 2>&1 &
  polls+=($!)
done
sleep 1
rc=0
stop_server "$bpid" || rc=$?
reap_server "$bpid" || true
kill -CONT "$REDIS_PID"
if [[ $rc == 0 ]] && ! sanitizer_report_in "$blog"; then
  pass "a node stopped while subscribes wait for Redis exits cleanly"
else
  check_fail "node B stopped with status $rc: $(grep -m3 -E 'ERROR|runtime error' "$blog")"
fi
wait "${polls[@]}" 2>/dev/null || true
finish
