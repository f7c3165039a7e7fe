#!/usr/bin/env bash
# Interop over TLS (wss://), with certificates from a test CA made at test
# time (tests/tls_certs.sh):
#   - Node `ws`, Python `websockets` and headless Chromium against
#     `duplex echo --tls-cert/--tls-key` (Chromium loads its page over https
#     from the same server's --static directory);
#   - plain ws:// and wss:// on the two ports of one server at once;
#   - a chain file (leaf + intermediate) in --tls-cert, verified by Python
#     and duplex connect trusting only the root;
#   - `duplex connect --ca` against a Node `ws` server over https, and
#     `duplex connect --cert/--key` against one that requires client
#     certificates.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
# shellcheck source=SCRIPTDIR/../tls_certs.sh
source "$here/../tls_certs.sh"

# dxc NAME INPUT_FILE ARGS...: run `duplex connect ARGS` with INPUT_FILE on
# stdin; sets OUT, ERR (file names) and RC.
dxc() { local n=$1 i=$2; shift 2; capture "$n" "$i" 60 "$DUPLEX" connect "$@"; }

# peer_logged ERE: the peer's log has a matching line (waits up to 5 s).
peer_logged() { wait_log "$PEER_LOG" "$1" 5; }

need_node_modules ws playwright-core
"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
chromium=${DX_CHROMIUM:-/usr/bin/chromium}
[[ -x "$chromium" ]] || fail "no Chromium at $chromium: run scripts/deps.sh --test"

C="$DX_TMP/certs"
make_test_certs "$C" || fail "could not make the test certificates"
static="$DX_TMP/static"
mkdir -p "$static"
printf '<!doctype html><title>duplex tls page</title><p>duplex tls page</p>\n' >"$static/tls.html"

# ---- one server, ws on PORT and wss on TLS_PORT -----------------------------
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-port 0 --static "$static"
[[ -n "$PORT" ]] || fail "the server with --tls-port logged no ws:// port"
pass "one server listens on ws://:$PORT and wss://:$TLS_PORT"

run_helper "node ws over TLS" node "$here/tls_node_client.mjs" "$TLS_PORT" "$PORT" "$C"
run_helper "python websockets over TLS" "$PY" "$here/tls_py_client.py" "$TLS_PORT" "$C"

# Chromium accepts exactly the test server's key (see tls_browser.mjs).
spki=$(openssl x509 -in "$C/server.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
run_helper "chromium over TLS" node "$here/tls_browser.mjs" "$TLS_PORT" tls.html "$spki"

# duplex's own client against duplex's server, both ports.
printf 'over wss\n' >"$DX_TMP/in1"
dxc self_wss "$DX_TMP/in1" --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/echo" -n 1
expect "duplex connect --ca to duplex echo over wss" 0 "$DX_TMP/in1"
dxc self_ws "$DX_TMP/in1" "ws://127.0.0.1:$PORT/echo" -n 1
expect "duplex connect to the plain port of the same server" 0 "$DX_TMP/in1"

# Compression over TLS too (Python offers permessage-deflate by default).
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --deflate --deflate-mode takeover \
  --static "$static"
DX_EXPECT_DEFLATE=1 run_helper "python websockets over TLS, --deflate takeover" \
  "$PY" "$here/tls_py_client.py" "$TLS_PORT" "$C" "deflate"

# ---- a certificate chain: leaf + intermediate in --tls-cert ----------------
# Clients trust only the root (ca.pem): the server must send the
# intermediate from its chain file.
start_echo_tls --tls-cert "$C/chain.pem" --tls-key "$C/chained.key"
run_helper "python websockets over TLS, leaf + intermediate, trusting only the root" \
  "$PY" "$here/tls_py_client.py" "$TLS_PORT" "$C" "chain"
dxc self_chain "$DX_TMP/in1" --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/echo" -n 1
expect "duplex connect --ca root to a leaf + intermediate chain" 0 "$DX_TMP/in1"

# ---- duplex connect against a Node ws server over https ---------------------
# start_tls_peer NAME ARGS...: start tls_peer_node.mjs; sets PEER_PORT, PEER_LOG.
start_tls_peer() {
  local name=$1 i pid
  shift
  PEER_LOG="$DX_TMP/peer-$name.log"
  : >"$PEER_LOG"
  node "$here/tls_peer_node.mjs" "$@" >"$PEER_LOG" 2>&1 &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$PEER_LOG")
  PEER_PORT=
  for ((i = 0; i < 200; i++)); do
    PEER_PORT=$(grep -m1 -oE '^listening [0-9]+' "$PEER_LOG" | grep -oE '[0-9]+$' || true)
    [[ -n "$PEER_PORT" ]] && break
    proc_gone "$pid" && fail "node TLS peer exited before listening: $(cat "$PEER_LOG")"
    sleep 0.05
  done
  [[ -n "$PEER_PORT" ]] || fail "node TLS peer printed no 'listening PORT' within 10 s"
  log "node TLS peer ($name) pid $pid on port $PEER_PORT"
}

start_tls_peer plain "$C"
U="wss://localhost:$PEER_PORT"
printf 'hello over TLS\nw\xc3\xb6rld \xe2\x9c\x93\n\nlast\n' >"$DX_TMP/in4"
dxc node_text "$DX_TMP/in4" --ca "$C/ca.pem" "$U/echo" -n 4
expect "duplex connect --ca to node ws over https: text echo" 0 "$DX_TMP/in4"
expect_err_text "status line names the wss URL" "duplex: connected to $U/echo"
peer_logged '^open /echo sni=localhost alpn=http/1.1 client=-' &&
  pass "node saw SNI localhost and ALPN http/1.1 from duplex connect" ||
  check_fail "SNI/ALPN as seen by node: $(grep '^open' "$PEER_LOG" | tail -n 2)"
peer_logged '^close /echo code=1000' && pass "node saw close 1000 over TLS" ||
  check_fail "node log: $(tail -n 3 "$PEER_LOG")"

"$PY" -c 'import sys; sys.stdout.write(("0123456789abcdef" * 65536) + "\n")' >"$DX_TMP/in_big"
dxc node_big "$DX_TMP/in_big" --ca "$C/ca.pem" "$U/echo" -n 1
expect "1 MiB text line echoed over TLS" 0 "$DX_TMP/in_big"
: >"$DX_TMP/empty"
"$PY" -c 'import sys; n = 2 << 20; sys.stdout.buffer.write(bytes((i * 7 + 3) & 255 for i in range(n)) + b"\n")' \
  >"$DX_TMP/want_large"
dxc node_large "$DX_TMP/empty" --ca "$C/ca.pem" "$U/large" -n 1 --binary-as raw
expect "2 MiB binary from node over TLS (raw)" 0 "$DX_TMP/want_large"
printf 'AB' >"$DX_TMP/in_ab" # --binary sends the bytes as they are
printf '4142\n' >"$DX_TMP/want_ab"
dxc node_bin "$DX_TMP/in_ab" --ca "$C/ca.pem" "wss://127.0.0.1:$PEER_PORT/echo" -n 1 --binary
expect "binary echo over TLS to wss://127.0.0.1 (IP SAN)" 0 "$DX_TMP/want_ab"
peer_logged '^open /echo sni=- ' && pass "no SNI sent for an IP address (RFC 6066 3)" ||
  check_fail "SNI for wss://127.0.0.1: $(grep '^open' "$PEER_LOG" | tail -n 1)"
dxc node_close "$DX_TMP/empty" --ca "$C/ca.pem" "$U/close4005" --wait-close
expect "server close 4005 over TLS: exit 1" 1 "$DX_TMP/empty"
expect_err_text "close 4005 reported" 'closed: code 4005 reason "bye"'
dxc node_noca "$DX_TMP/in1" "$U/echo" -n 1
expect "without --ca the private CA is not trusted: exit 1" 1 "$DX_TMP/empty"
expect_err_text "verification error reported" "TLS certificate verification failed"

# Mutual TLS: node requires a client certificate from the test CA.
start_tls_peer mtls "$C" mtls
U="wss://localhost:$PEER_PORT"
dxc mtls_ok "$DX_TMP/in1" --ca "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" "$U/echo" -n 1
expect "duplex connect --cert/--key to node requiring client certificates" 0 "$DX_TMP/in1"
peer_logged '^open /echo .*client=duplex test client' && pass "node saw our client certificate" ||
  check_fail "node log: $(tail -n 3 "$PEER_LOG")"
dxc mtls_none "$DX_TMP/in1" --ca "$C/ca.pem" "$U/echo" -n 1
expect "no client certificate: node refuses, exit 1" 1 "$DX_TMP/empty"
grep -q 'error:' "$ERR" && pass "no client certificate: an error is reported ($(grep -m1 'error:' "$ERR"))" ||
  check_fail "no client certificate: no error line: $(head -c 1000 "$ERR")"
dxc mtls_other "$DX_TMP/in1" --ca "$C/ca.pem" --cert "$C/client2.pem" --key "$C/client2.key" "$U/echo" -n 1
expect "client certificate from another CA: node refuses, exit 1" 1 "$DX_TMP/empty"

finish
