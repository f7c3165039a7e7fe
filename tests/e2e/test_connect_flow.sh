#!/usr/bin/env bash
# duplex connect keeps up with a fast producer: it stops reading stdin while
# the connection is behind (on_drain resumes it) instead of queueing without
# bound or tripping its own send cap.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
start_echo
n=100000
out="$DX_TMP/out"
rc=0
seq 1 "$n" | "$DUPLEX" connect -q "ws://127.0.0.1:$PORT/" -n "$n" >"$out" 2>"$out.err" || rc=$?
[[ $rc == 0 ]] && pass "exits 0 after $n echoes" || check_fail "exit $rc: $(tail -3 "$out.err")"
lines=$(wc -l <"$out")
[[ $lines == "$n" ]] && pass "all $n lines came back" || check_fail "$lines of $n lines came back"
[[ "$(tail -1 "$out")" == "$n" ]] && pass "in order" || check_fail "last line $(tail -1 "$out")"
grep -q "slow client" "$ECHO_LOG" && check_fail "the server saw a slow client" ||
  pass "no slow-client close"
finish
