#!/usr/bin/env bash
# End to end: the `duplex connect` command-line contract, against
# `duplex echo`:
#   - stdout carries the received messages only, one per line; status lines
#     ("duplex: connected ...", "duplex: closed ...") go to stderr
#   - exit 0 after a clean close, 1 when the connection failed (with one
#     error line), 2 for usage errors; --help exits 0
#   - --binary / --binary-as, -n, -q, -H, --timeout, --reconnect,
#     --origin, --ping-interval; bad option values are usage errors
#   - SIGINT exits 0 whether connecting, open or waiting to reconnect
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY

[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"

# dxc NAME INPUT_FILE ARGS...: run `duplex connect ARGS` with INPUT_FILE on
# stdin; sets OUT, ERR (file names) and RC.
dxc() { local n=$1 i=$2; shift 2; capture "$n" "$i" 60 "$DUPLEX" connect "$@"; }

# start_fixture MODE: connect_cli_port.py MODE in the background; sets FIX_PORT.
start_fixture() {
  local out="$DX_TMP/fixture.$1.$RANDOM" i
  "$PY" "$here/connect_cli_port.py" "$1" >"$out" 2>&1 &
  FIX_PID=$!
  FIX_PORT=
  for ((i = 0; i < 200; i++)); do
    FIX_PORT=$(grep -m1 -oE '^port [0-9]+' "$out" | grep -oE '[0-9]+$' || true)
    [[ -n "$FIX_PORT" ]] && return 0
    sleep 0.05
  done
  fail "connect_cli_port.py $1 printed no port: $(cat "$out")"
}

in="$DX_TMP/in"
want="$DX_TMP/want"
empty="$DX_TMP/empty"
: >"$empty"

start_echo
U="ws://127.0.0.1:$PORT/"

# ---- the basic contract ----
printf 'hi\n' >"$in"
dxc hi "$in" "$U" -n 1
expect "echo hi | duplex connect URL -n 1 prints exactly 'hi', exit 0" 0 "$in"
expect_err "'connected' status line on stderr" "^duplex: connected to ws://127\.0\.0\.1:$PORT/$"
expect_err "'closed' status line on stderr" '^duplex: closed: code 1000$'
if grep -vE '^duplex: ' "$ERR" | grep -q .; then
  check_fail "stderr has only status lines: $(cat "$ERR")"
else
  pass "stderr has only status lines"
fi

# The same through a pipe (stdin watched by the loop, not read at once).
RC=0
OUT="$DX_TMP/pipe.out"
ERR="$DX_TMP/pipe.err"
printf 'hi\n' | timeout -k 5 60 "$DUPLEX" connect "$U" -n 1 >"$OUT" 2>"$ERR" || RC=$?
expect "the same with stdin a pipe" 0 "$in"

printf 'one\ntwo\n\nthree four\n' >"$in"
cp "$in" "$want"
dxc lines "$in" "$U" -n 4
expect "several lines (one empty), in order" 0 "$want"

# CRLF line ends lose the CR; a last line without a newline is still sent.
printf 'crlf\r\nno newline' >"$in"
printf 'crlf\nno newline\n' >"$want"
dxc crlf "$in" "$U" -n 2
expect "CRLF stripped, unterminated last line sent" 0 "$want"

# UTF-8 and a 256 KiB line.
"$PY" -c 'import sys; sys.stdout.write("h\u00e9llo \u2713 " * 20000 + "\n")' >"$in"
dxc big "$in" "$U" -n 1
expect "a 256 KiB UTF-8 line" 0 "$in"

# Input ended, no -n: the client closes with 1000 right away, exit 0.
dxc eof "$empty" "$U"
expect "empty input: clean close, exit 0" 0 "$empty"

# ---- binary: stdin bytes unaltered, each read one message ----
printf 'hi' >"$in"
printf '6869\n' >"$want"
dxc bin_hex "$in" "$U" -n 1 --binary
expect "--binary: printed as hex by default" 0 "$want"
dxc bin_hex2 "$in" "$U" -n 1 --binary --binary-as hex
expect "--binary-as hex" 0 "$want"
printf 'aGk=\n' >"$want"
dxc bin_b64 "$in" "$U" -n 1 --binary --binary-as base64
expect "--binary-as base64" 0 "$want"
printf 'abcd' >"$in"
printf 'YWJjZA==\n' >"$want"
dxc bin_b64pad "$in" "$U" -n 1 --binary --binary-as base64
expect "--binary-as base64 padding (==)" 0 "$want"
printf 'abcde' >"$in"
printf 'YWJjZGU=\n' >"$want"
dxc bin_b64pad1 "$in" "$U" -n 1 --binary --binary-as base64
expect "--binary-as base64 padding (=)" 0 "$want"
printf 'raw\n' >"$in"
dxc bin_raw "$in" "$U" -n 1 --binary --binary-as raw
printf 'raw\n\n' >"$want"
expect "--binary-as raw (the newline is part of the message)" 0 "$want"
# Line ends, CRs and NULs go out as they are, in one message.
printf 'a\r\nb\0c\n\nd\r' >"$in"
printf '610d0a6200630a0a640d\n' >"$want"
dxc bin_exact "$in" "$U" -n 1 --binary
expect "--binary: CR, LF and NUL bytes unaltered, one message" 0 "$want"
# 200 KiB from a file: 64 KiB messages, nothing lost or added.
head -c 204800 /dev/urandom >"$in"
dxc bin_big "$in" "$U" -n 4 --binary --binary-as raw
if [[ $RC == 0 ]] && [[ $(wc -c <"$OUT") == $((204800 + 4)) ]] &&
  cmp -s <(head -c 65536 "$OUT") <(head -c 65536 "$in"); then
  pass "--binary: a 200 KiB file in 64 KiB messages"
else
  check_fail "--binary big: exit $RC, $(wc -c <"$OUT") bytes out; stderr: $(head -c 500 "$ERR")"
fi

# ---- quiet ----
printf 'q\n' >"$in"
dxc quiet "$in" "$U" -n 1 -q
expect "-q: messages still on stdout" 0 "$in"
[[ -s "$ERR" ]] && check_fail "-q: stderr not empty: $(cat "$ERR")" || pass "-q: nothing on stderr"

# ---- failures: exit 1 and one error line ----
start_fixture hold
dxc refused "$empty" "ws://127.0.0.1:$FIX_PORT/"
expect "refused: exit 1, nothing on stdout" 1 "$empty"
if [[ $(wc -l <"$ERR") == 1 ]] && grep -qE '^duplex: error: .*connection refused' "$ERR"; then
  pass "refused: one error line naming the cause"
else
  check_fail "refused: expected one 'error: ... connection refused' line: $(cat "$ERR")"
fi
# -q hides status lines, not the reason of a failure.
dxc refused_quiet "$empty" "ws://127.0.0.1:$FIX_PORT/" -q
expect "refused -q: exit 1" 1 "$empty"
if [[ $(wc -l <"$ERR") == 1 ]] && grep -qE '^duplex: error: .*connection refused' "$ERR"; then
  pass "refused -q: still one error line"
else
  check_fail "refused -q: expected one 'error: ... connection refused' line: $(cat "$ERR")"
fi
kill "$FIX_PID" 2>/dev/null
wait "$FIX_PID" 2>/dev/null

dxc dns "$empty" "ws://nonexistent.invalid/"
expect "DNS failure: exit 1" 1 "$empty"
expect_err "DNS failure: the error says so" '^duplex: error: DNS lookup failed for nonexistent\.invalid'

start_fixture silent
dxc timeout "$empty" "ws://127.0.0.1:$FIX_PORT/" --timeout 500ms
expect "silent server with --timeout 500ms: exit 1" 1 "$empty"
expect_err "silent server: the error says it timed out" '^duplex: error: .*timed out'

# bg_connect NAME ARGS...: duplex connect in the background, its stdin a
# FIFO kept open on fd 3 (input never ends); sets BG_PID, OUT and ERR.
bg_connect() {
  local name=$1 fifo="$DX_TMP/$1.fifo"
  shift
  OUT="$DX_TMP/$name.out"
  ERR="$DX_TMP/$name.err"
  mkfifo "$fifo"
  "$DUPLEX" connect "$@" <"$fifo" >"$OUT" 2>"$ERR" &
  BG_PID=$!
  exec 3>"$fifo"
}

# sigint_status: SIGINT the background client, wait (10 s at most), set RC.
sigint_status() {
  RC=0
  kill -INT "$BG_PID" 2>/dev/null
  wait_gone "$BG_PID" 10 || kill -KILL "$BG_PID"
  wait "$BG_PID" || RC=$?
  exec 3>&-
  if sanitizer_report_in "$ERR"; then
    check_fail "sanitizer report from duplex connect: $(head -c 3000 "$ERR")"
  fi
}

# --timeout 0: no timeout. SIGINT while still connecting exits 0.
bg_connect timeout0 "ws://127.0.0.1:$FIX_PORT/" --timeout 0
sleep 1.5
if proc_gone "$BG_PID"; then
  check_fail "--timeout 0: gave up: $(cat "$ERR")"
else
  pass "--timeout 0: still waiting after 1.5 s"
fi
sigint_status
[[ $RC == 0 ]] && pass "SIGINT while connecting: exit 0" ||
  check_fail "SIGINT while connecting: exit $RC: $(cat "$ERR")"
kill "$FIX_PID" 2>/dev/null
wait "$FIX_PID" 2>/dev/null

# SIGINT while waiting to reconnect: the same status.
start_fixture hold
bg_connect sigint_wait "ws://127.0.0.1:$FIX_PORT/" --reconnect
for ((i = 0; i < 200; i++)); do
  grep -q 'reconnecting in' "$ERR" && break
  sleep 0.05
done
sigint_status
[[ $RC == 0 ]] && pass "SIGINT while waiting to reconnect: exit 0" ||
  check_fail "SIGINT while waiting to reconnect: exit $RC: $(cat "$ERR")"
kill "$FIX_PID" 2>/dev/null
wait "$FIX_PID" 2>/dev/null

# --ping-interval: a server that answers the handshake and then nothing.
start_fixture mute
t0=$(now_us)
dxc ping_dead "$empty" "ws://127.0.0.1:$FIX_PORT/" --ping-interval 200ms --wait-close
ms=$((($(now_us) - t0) / 1000))
expect "--ping-interval: an unanswered ping fails the connection, exit 1" 1 "$empty"
expect_err "--ping-interval: the error says so" '^duplex: error: the peer did not answer a ping in time$'
((ms >= 350 && ms < 5000)) && pass "--ping-interval 200ms: noticed after ${ms} ms" ||
  check_fail "--ping-interval 200ms: took ${ms} ms"
kill "$FIX_PID" 2>/dev/null
wait "$FIX_PID" 2>/dev/null
printf 'kept alive\n' >"$in"
dxc ping_alive "$in" "$U" --ping-interval 50ms -n 1
expect "--ping-interval against a live server: normal session" 0 "$in"

# ---- usage errors: exit 2 ----
usage() { # NAME ERE ARGS...
  local name=$1 re=$2
  shift 2
  dxc usage "$empty" "$@"
  if [[ $RC == 2 ]] && grep -qE -- "$re" "$ERR" && ! [[ -s "$OUT" ]]; then
    pass "usage error: $name (exit 2)"
  else
    check_fail "usage error: $name: exit $RC, stderr: $(cat "$ERR")"
  fi
}
usage "http:// URL" 'ws:// or wss://' "http://127.0.0.1:$PORT/"
usage "not a URL" 'ws://' "127.0.0.1:$PORT"
usage "bad port" 'port' "ws://127.0.0.1:99999/"
usage "fragment in URL" 'fragment' "ws://127.0.0.1:$PORT/#x"
usage "unknown option" "unknown option '--bogus'" --bogus "$U"
usage "missing URL" 'URL is required' -n 1
usage "two URLs" 'one URL' "$U" "$U"
usage "bad count" 'bad count' -n 0 "$U"
usage "bad --binary-as" 'binary-as' --binary-as octal "$U"
usage "bad header" 'bad header' -H 'no colon' "$U"
usage "option without value" 'needs a value' "$U" -H
# Option values that cannot go into the request: refused at once, also
# with --reconnect (they used to fail every attempt, forever).
usage "subprotocol with a space" "bad subprotocol 'a b'" -s 'a b' "$U"
usage "subprotocol with a space, --reconnect" 'bad subprotocol' -s 'a b' --reconnect "$U"
usage "subprotocol offered twice" 'offered twice' -s chat -s chat "$U"
usage "Origin with a newline" 'bad Origin' --origin $'x\ny' --reconnect "$U"
usage "Origin with a control character" 'bad Origin' --origin $'x\001' "$U"
usage "a header the client sets itself" 'sets this header itself' -H 'Host: other' "$U"
usage "a header name with a space" 'bad header' -H 'X Y: 1' "$U"
usage "bracketed non-IPv6 host" 'IPv6' "ws://[1]:$PORT/"
usage "bad character in host" 'host' "ws://a|b:$PORT/"
usage "bad proxy" 'proxy' --proxy 'http://h:1/path' "$U"

dxc help "$empty" --help
if [[ $RC == 0 ]] && grep -q '^usage: duplex connect' "$OUT"; then
  pass "--help: usage on stdout, exit 0"
else
  check_fail "--help: exit $RC, stdout: $(head -c 300 "$OUT")"
fi

# ---- --origin: a server that allows one Origin ----
start_echo --origin https://ok.test
OU="ws://127.0.0.1:$PORT/"
printf 'from ok.test\n' >"$in"
dxc origin_ok "$in" "$OU" -n 1 --origin https://ok.test
expect "--origin: the allowed Origin connects" 0 "$in"
dxc origin_bad "$in" "$OU" -n 1 --origin https://evil.test
expect "--origin: another Origin is refused, exit 1" 1 "$empty"
expect_err "--origin: refused with 403" '^duplex: error: handshake rejected with HTTP status 403$'
dxc origin_none "$in" "$OU" -n 1
expect "no --origin: refused by that server" 1 "$empty"

# ---- -H reaches the server (a Python websockets server echoes it back) ----
if "$PY" -c 'import websockets' 2>/dev/null; then
  peer_log="$DX_TMP/peer.log"
  "$PY" "$DX_SOURCE_DIR/tests/interop/client_peer_python.py" >"$peer_log" 2>&1 &
  peer=$!
  DX_SERVER_PIDS+=("$peer")
  DX_SERVER_LOGS+=("$peer_log")
  ppeer=
  for ((i = 0; i < 200; i++)); do
    ppeer=$(grep -m1 -oE '^listening [0-9]+' "$peer_log" | grep -oE '[0-9]+$' || true)
    [[ -n "$ppeer" ]] && break
    sleep 0.05
  done
  [[ -n "$ppeer" ]] || fail "client_peer_python.py did not start: $(cat "$peer_log")"
  printf 'X-Test=token 123\n' >"$want"
  dxc header "$empty" "ws://127.0.0.1:$ppeer/header" -n 1 -H 'X-Test: token 123' \
    -H 'X-Other: x'
  expect "-H 'X-Test: token 123' reaches the server" 0 "$want"
else
  check_fail "-H: $PY cannot import websockets (python3-websockets)"
fi

# ---- --reconnect: the server is down, then comes up on the same port ----
start_fixture hold
RPORT=$FIX_PORT
printf 'after reconnect\n' >"$in"
OUT="$DX_TMP/reconnect.out"
ERR="$DX_TMP/reconnect.err"
timeout -k 5 60 "$DUPLEX" connect --reconnect "ws://127.0.0.1:$RPORT/" -n 1 <"$in" >"$OUT" 2>"$ERR" &
cpid=$!
for ((i = 0; i < 300; i++)); do
  (($(grep -c 'reconnecting in' "$ERR") >= 2)) && break
  sleep 0.05
done
(($(grep -c 'reconnecting in' "$ERR") >= 2)) && pass "--reconnect: retries while the server is down" ||
  check_fail "--reconnect: no retries: $(cat "$ERR")"
expect_err "--reconnect: 'reconnecting in N ms (attempt K)'" '^duplex: reconnecting in [0-9]+ ms \(attempt 1\)$'
expect_err "--reconnect: attempts count up" '^duplex: reconnecting in [0-9]+ ms \(attempt 2\)$'
expect_err "--reconnect: each failure is reported" '^duplex: error: .*connection refused'
# The echo server takes the port (SO_REUSEPORT with --threads 2; the
# fixture still holds it, so no one else could have).
start_echo --port "$RPORT" --threads 2
[[ $PORT == "$RPORT" ]] || fail "echo server on port $PORT, not $RPORT"
rc=0
wait "$cpid" || rc=$?
RC=$rc
expect "--reconnect: connects once the server is up, -n 1 exits 0" 0 "$in"
expect_err "--reconnect: connected" "^duplex: connected to ws://127\.0\.0\.1:$RPORT/$"
sanitizer_report_in "$ERR" && check_fail "--reconnect: sanitizer report: $(head -c 3000 "$ERR")"
kill "$FIX_PID" 2>/dev/null
wait "$FIX_PID" 2>/dev/null

finish
