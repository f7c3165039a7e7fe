#!/usr/bin/env bash
# duplex bench against duplex echo: each mode runs, reports sane numbers,
# and exits 0; bad usage exits 2.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
start_echo --deflate

out="$DX_TMP/bench.out"
if "$DUPLEX" bench "ws://127.0.0.1:$PORT/" -c 4 -k 2 -d 1s -w 200ms >"$out" 2>"$out.err"; then
  pass "echo mode exits 0"
else
  check_fail "echo mode failed: $(cat "$out.err")"
fi
grep -qE '^messages +[1-9][0-9]* in' "$out" && pass "echo mode counted messages" ||
  check_fail "no message count: $(cat "$out")"
grep -qE '^latency +p50 [0-9.]+ us' "$out" && pass "latency percentiles printed" ||
  check_fail "no latency line"
grep -qE '^errors +0$' "$out" && pass "no errors" || check_fail "errors: $(grep errors "$out")"
grep -q 'msg/s' "$out.err" && pass "progress line on stderr" || check_fail "no progress line"

"$DUPLEX" bench "ws://127.0.0.1:$PORT/" -c 4 -d 1s -w 0 --handshakes >"$out" 2>/dev/null &&
  grep -qE '^handshakes +[1-9][0-9]* in' "$out" && pass "handshake storm" ||
  check_fail "handshake storm: $(cat "$out")"

"$DUPLEX" bench "ws://127.0.0.1:$PORT/" -c 2 -d 1s -w 0 -r 200 --json >"$out" 2>/dev/null &&
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["mode"]=="rate" and 150 <= d["msgs_per_sec"] <= 250, d' "$out" &&
  pass "open-loop rate mode holds its rate (json)" || check_fail "rate mode: $(cat "$out")"

"$DUPLEX" bench "ws://127.0.0.1:$PORT/" -c 2 -d 1s -w 0 -s 4K --text --deflate >"$out" 2>/dev/null &&
  grep -qE '^errors +0$' "$out" && pass "text + deflate" || check_fail "deflate: $(cat "$out")"

rc=0
"$DUPLEX" bench >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] && pass "missing URL exits 2" || check_fail "missing URL exit $rc"
rc=0
"$DUPLEX" bench -s 3 "ws://127.0.0.1:$PORT/" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] && pass "too small size exits 2" || check_fail "size exit $rc"
"$DUPLEX" bench --help | grep -q 'usage: duplex bench' && pass "--help" || check_fail "--help"
finish
