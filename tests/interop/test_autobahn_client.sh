#!/usr/bin/env bash
# examples/autobahn_client (the Autobahn testsuite's client-side testee)
# against a stand-in fuzzing server in Python websockets
# (autobahn_fake_server.py): it reads the case count, runs every case in
# order echoing each message with its type (fragmented, empty, 20 MiB,
# UTF-8), answers pings, then asks for the report. Also: a server that
# drops or fails cases, and one with a bad case count.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
bin="$DX_BUILD_DIR/examples/autobahn_client"
[[ -x "$bin" ]] || fail "no $bin: the examples were not built"

# start_fake MODE: sets FAKE_PORT and FAKE_LOG.
start_fake() {
  FAKE_LOG="$DX_TMP/fake.$1.log"
  "$PY" "$here/autobahn_fake_server.py" "$1" >"$FAKE_LOG" 2>&1 &
  DX_SERVER_PIDS+=("$!")
  DX_SERVER_LOGS+=("$FAKE_LOG")
  local i
  FAKE_PORT=
  for ((i = 0; i < 200; i++)); do
    FAKE_PORT=$(grep -m1 -oE '^listening [0-9]+' "$FAKE_LOG" | grep -oE '[0-9]+$' || true)
    [[ -n "$FAKE_PORT" ]] && return 0
    sleep 0.05
  done
  fail "autobahn_fake_server.py $1 did not start: $(cat "$FAKE_LOG")"
}

# run_client NAME ARGS...: sets RC, OUT, ERR.
run_client() {
  local name=$1
  shift
  OUT="$DX_TMP/$name.out"
  ERR="$DX_TMP/$name.err"
  RC=0
  timeout -k 5 90 "$bin" "$@" >"$OUT" 2>"$ERR" || RC=$?
  if sanitizer_report_in "$ERR"; then
    check_fail "$name: sanitizer report: $(head -c 3000 "$ERR")"
  fi
}

has() { # LABEL FILE FIXED_STRING
  grep -qF -- "$3" "$2" && pass "$1" || check_fail "$1: no '$3' in: $(tail -n 20 "$2")"
}

# ---- normal: 3 cases ----
start_fake normal
run_client normal "ws://127.0.0.1:$FAKE_PORT/" duplex-test
[[ $RC == 0 ]] && pass "normal: exit 0" || check_fail "normal: exit $RC: $(cat "$ERR")"
for n in 1 2 3; do
  has "normal: case $n ran with the agent" "$FAKE_LOG" "runCase $n agent=duplex-test"
  has "normal: case $n echoes were right" "$FAKE_LOG" "case $n ok"
  has "normal: progress 'case $n/3'" "$ERR" "case $n/3"
done
has "normal: reports updated after all cases" "$FAKE_LOG" "report agent=duplex-test cases=1,2,3"
grep -qE 'FAIL|error|closed early|unexpected' "$FAKE_LOG" &&
  check_fail "normal: server log: $(grep -E 'FAIL|error|closed early|unexpected' "$FAKE_LOG")" ||
  pass "normal: no failures on the server"
[[ -s "$OUT" ]] && check_fail "normal: stdout not empty" || pass "normal: progress on stderr only"

# ---- rough: a case dropped without a close frame, one closed with 1002 ----
start_fake rough
run_client rough "ws://127.0.0.1:$FAKE_PORT" # no trailing slash, default agent
[[ $RC == 0 ]] && pass "rough: exit 0" || check_fail "rough: exit $RC: $(cat "$ERR")"
has "rough: case 1 ran" "$FAKE_LOG" "case 1 ok"
has "rough: case 2 ran after the dropped one" "$FAKE_LOG" "case 2 ok"
has "rough: default agent 'duplex', reports updated" "$FAKE_LOG" "report agent=duplex cases=1,2"

# ---- a bad case count: exit 1 with a message ----
start_fake badcount
run_client badcount "ws://127.0.0.1:$FAKE_PORT"
[[ $RC == 1 ]] && pass "bad case count: exit 1" || check_fail "bad case count: exit $RC"
has "bad case count: says so" "$ERR" "bad case count 'three'"
grep -q runCase "$FAKE_LOG" && check_fail "bad case count: ran cases anyway" ||
  pass "bad case count: no cases run"

# ---- nothing listening: exit 1 with the reason ----
run_client refused "ws://127.0.0.1:1"
[[ $RC == 1 ]] && pass "no server: exit 1" || check_fail "no server: exit $RC"
has "no server: the reason is given" "$ERR" "connection refused"
run_client usage
[[ $RC == 2 ]] && pass "no arguments: exit 2" || check_fail "no arguments: exit $RC"
finish
