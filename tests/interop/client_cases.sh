# shellcheck shell=bash
# `duplex connect` against a real peer server: sourced by test_client_node.sh
# and test_client_python.sh after lib.sh. The peer (client_peer_node.mjs or
# client_peer_python.py) prints "listening PORT" and one line per event.
# client_ops (tests/interop/client_ops.c) adds what the CLI cannot express:
# client pings, fragmented client messages, a client close with a reason.
#
#   start_peer CMD...        start it, set PEER_PORT and PEER_LOG
#   client_cases LABEL       run every case against it

start_peer() {
  PEER_LOG="$DX_TMP/peer.log"
  : >"$PEER_LOG"
  "$@" >"$PEER_LOG" 2>&1 &
  local pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$PEER_LOG")
  local i
  PEER_PORT=
  for ((i = 0; i < 200; i++)); do
    PEER_PORT=$(grep -m1 -oE '^listening [0-9]+' "$PEER_LOG" | grep -oE '[0-9]+$' || true)
    [[ -n "$PEER_PORT" ]] && break
    proc_gone "$pid" && fail "peer '$*' exited before listening: $(cat "$PEER_LOG")"
    sleep 0.05
  done
  [[ -n "$PEER_PORT" ]] || fail "peer '$*' printed no 'listening PORT' within 10 s"
  log "peer pid $pid listening on port $PEER_PORT"
}

# dxc NAME INPUT_FILE ARGS...: run `duplex connect ARGS` with INPUT_FILE on
# stdin; sets OUT, ERR (file names) and RC.
dxc() { local n=$1 i=$2; shift 2; capture "$n" "$i" 60 "$DUPLEX" connect "$@"; }

# The peer's log has a line matching the ERE (waits up to 5 s).
peer_logged() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -qE "$1" "$PEER_LOG" && return 0
    sleep 0.05
  done
  return 1
}

client_cases() {
  local L=$1 U="ws://127.0.0.1:$PEER_PORT" in="$DX_TMP/in" want="$DX_TMP/want"
  local empty="$DX_TMP/empty"
  : >"$empty"

  # Text echo: several lines (an empty one too), UTF-8; the client closes
  # with 1000 once it has them all.
  printf 'hello\nw\xc3\xb6rld \xe2\x9c\x93\n\nlast\n' >"$in"
  cp "$in" "$want"
  dxc text "$in" "$U/echo" -n 4
  expect "$L: text echo (4 lines)" 0 "$want"
  expect_err_text "$L: status line on stderr" "duplex: connected to $U/echo"
  grep -q 'with subprotocol' "$ERR" && check_fail "$L: no subprotocol offered, none selected" ||
    pass "$L: no subprotocol when none offered"
  peer_logged '^close /echo code=1000' && pass "$L: the server saw close 1000 from the client" ||
    check_fail "$L: the server did not log close 1000: $(tail -n 5 "$PEER_LOG")"

  # Subprotocols: the server supports chat.v2 and chat.v1.
  printf 'x\n' >"$in"
  dxc proto1 "$in" "$U/echo" -n 1 --subprotocol chat.v1
  expect "$L: echo with a subprotocol" 0 "$in"
  expect_err_text "$L: subprotocol chat.v1 selected" "connected to $U/echo with subprotocol chat.v1"
  peer_logged '^open /echo protocol=chat.v1' && pass "$L: the server chose chat.v1" ||
    check_fail "$L: server log: $(tail -n 5 "$PEER_LOG")"
  dxc proto2 "$in" "$U/echo" -n 1 -s chat.v9 -s chat.v2
  expect "$L: two offers" 0 "$in"
  expect_err_text "$L: the supported one of two offers selected" "with subprotocol chat.v2"
  dxc proto3 "$in" "$U/echo" -n 1 -s chat.v9
  expect "$L: unsupported offer: still connects" 0 "$in"
  grep -q 'with subprotocol' "$ERR" && check_fail "$L: no subprotocol expected: $(cat "$ERR")" ||
    pass "$L: unsupported offer: no subprotocol"

  # Binary echo (stdin bytes as they are), printed as hex and base64.
  printf 'AB' >"$in"
  printf '4142\n' >"$want"
  dxc bin_hex "$in" "$U/echo" -n 1 --binary
  expect "$L: binary echo as hex" 0 "$want"
  printf 'QUI=\n' >"$want"
  dxc bin_b64 "$in" "$U/echo" -n 1 --binary --binary-as base64
  expect "$L: binary echo as base64" 0 "$want"

  # Binary from the server: 0..255.
  "$PY" -c 'print(bytes(range(256)).hex())' >"$want"
  dxc bin256 "$empty" "$U/binary" -n 1
  expect "$L: server binary 0..255 as hex" 0 "$want"
  "$PY" -c 'import base64; print(base64.b64encode(bytes(range(256))).decode())' >"$want"
  dxc bin256b "$empty" "$U/binary" -n 1 --binary-as base64
  expect "$L: server binary 0..255 as base64" 0 "$want"

  # Large: a 1 MiB text line echoed; 4 MiB of binary from the server.
  "$PY" -c 'import sys; sys.stdout.write(("0123456789abcdef" * 65536) + "\n")' >"$in"
  dxc large_text "$in" "$U/echo" -n 1
  expect "$L: 1 MiB text echo" 0 "$in"
  "$PY" -c 'import sys; n = 4 << 20; sys.stdout.buffer.write(bytes((i * 7 + 3) & 255 for i in range(n)) + b"\n")' >"$want"
  dxc large_bin "$empty" "$U/large" -n 1 --binary-as raw
  expect "$L: 4 MiB binary from the server (raw)" 0 "$want"

  # Fragmented messages from the server (a ping between fragments).
  printf 'fragmented!\ndeadbeef\n' >"$want"
  dxc frag "$empty" "$U/frag" -n 2
  expect "$L: fragmented text and binary from the server" 0 "$want"

  # The server pings; the client answers with a pong (same payload).
  printf 'pong:are you there\n' >"$want"
  dxc ping "$empty" "$U/ping" -n 1
  expect "$L: ping from the server answered with a pong" 0 "$want"
  peer_logged '^pong are you there' && pass "$L: the server got the pong" ||
    check_fail "$L: server log: $(tail -n 5 "$PEER_LOG")"

  # Close codes from the server.
  dxc close4005 "$empty" "$U/close4005" --wait-close
  expect "$L: server close 4005: exit 1, no output" 1 "$empty"
  expect_err_text "$L: close 4005 reported" 'closed: code 4005 reason "bye"'
  dxc close1000 "$empty" "$U/close1000" --wait-close
  expect "$L: server close 1000: exit 0" 0 "$empty"
  expect_err_text "$L: close 1000 reported" 'closed: code 1000 reason "done"'

  # What duplex connect cannot express (tests/interop/client_ops.c): a ping
  # from the client, fragmented messages from the client (a ping between
  # fragments), a close with 4001 and a reason from the client.
  run_helper "$L: client_ops" "$DX_BUILD_DIR/tests/client_ops" "$U/echo"
  peer_logged '^close /echo code=4001 reason=client bye ✓$' &&
    pass "$L: the server got close 4001 with the reason" ||
    check_fail "$L: server log: $(tail -n 5 "$PEER_LOG")"

  # A request header reaches the server.
  printf 'X-Test=hello header\n' >"$want"
  dxc header "$empty" "$U/header" -n 1 -H 'X-Test: hello header'
  expect "$L: -H header reaches the server" 0 "$want"

  # SIGINT: close with 1000, exit 0.
  local fifo="$DX_TMP/stdin.fifo" pid rc=0 n0
  n0=$(grep -c '^close /echo code=1000' "$PEER_LOG")
  mkfifo "$fifo"
  OUT="$DX_TMP/sigint.out"
  ERR="$DX_TMP/sigint.err"
  "$DUPLEX" connect "$U/echo" <"$fifo" >"$OUT" 2>"$ERR" &
  pid=$!
  exec 3>"$fifo"
  printf 'before signal\n' >&3
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q 'before signal' "$OUT" && break
    sleep 0.05
  done
  kill -INT "$pid"
  wait_gone "$pid" 10 || kill -KILL "$pid"
  wait "$pid" || rc=$?
  exec 3>&-
  printf 'before signal\n' >"$want"
  RC=$rc
  expect "$L: SIGINT closes and exits 0" 0 "$want"
  for ((i = 0; i < 100; i++)); do
    (($(grep -c '^close /echo code=1000' "$PEER_LOG") > n0)) && break
    sleep 0.05
  done
  (($(grep -c '^close /echo code=1000' "$PEER_LOG") > n0)) && pass "$L: SIGINT sends close 1000" ||
    check_fail "$L: server log: $(tail -n 5 "$PEER_LOG")"

  # stdout carries messages only, never status lines.
  if grep -l '^duplex' "$DX_TMP"/*.out >/dev/null 2>&1; then
    check_fail "$L: a status line on stdout: $(grep -l '^duplex' "$DX_TMP"/*.out)"
  else
    pass "$L: no status lines on stdout"
  fi
  if grep -q '^error' "$PEER_LOG"; then
    check_fail "$L: the server logged errors: $(grep '^error' "$PEER_LOG" | head -n 5)"
  else
    pass "$L: no errors on the server"
  fi
}
