#!/usr/bin/env bash
# End to end: TLS failures are clear and contained.
#   - `duplex connect` refuses an untrusted CA, a certificate for another
#     host (by name and by IP) and an expired certificate, with a readable
#     message and exit status 1; --insecure connects anyway, with a warning;
#   - plaintext on the TLS port and TLS on the plain port are answered or
#     closed with a log line, and the server keeps serving (tls_errors.py,
#     which also sends garbage, truncated/oversized/tampered records and
#     random bytes, and checks --handshake-timeout on the TLS port for
#     silent, stalled and TLS-but-no-HTTP clients);
#   - mutual TLS (--tls-ca): no client certificate or one from another CA
#     is refused (with --insecure too, and then the message names the
#     missing certificate, not verification), --cert/--key from the CA is
#     accepted;
#   - certificate chains: leaf + intermediate in --tls-cert verifies against
#     the root alone, the leaf alone does not;
#   - host names: *.wild.test matches one label, partial wildcards
#     (w*.wild.test) are refused (through a CONNECT proxy, no DNS needed);
#   - TLS 1.2 with only weak suites (CBC, RSA key exchange, DHE, 3DES/RC4
#     where openssl still has them) is refused, and the server keeps serving;
#   - SIGHUP reloads the certificate: open connections keep working, new
#     ones get the new certificate; a broken replacement is refused and the
#     old certificate kept.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
# shellcheck source=SCRIPTDIR/../tls_certs.sh
source "$here/../tls_certs.sh"

command -v openssl >/dev/null || fail "the openssl command is not installed"
[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
C="$DX_TMP/certs"
make_test_certs "$C" || fail "could not make the test certificates"
IN="$DX_TMP/in"
printf 'hello tls\n' >"$IN"

# dxc NAME ARGS...: `duplex connect ARGS` with $IN on stdin; sets OUT, ERR, RC.
dxc() { local n=$1; shift; capture "$n" "$IN" 30 "$DUPLEX" connect "$@"; }

# expect_refused NAME ERE: the last dxc failed with exit 1, printed nothing
# on stdout and a "duplex: error: ..." line matching ERE on stderr.
expect_refused() {
  if [[ $RC != 1 ]]; then
    check_fail "$1: exit status $RC, expected 1; stderr: $(head -c 1000 "$ERR")"
  elif [[ -s "$OUT" ]]; then
    check_fail "$1: output on stdout: $(head -c 200 "$OUT")"
  elif ! grep -qE -- "^duplex: error: .*($2)" "$ERR"; then
    check_fail "$1: stderr does not match '$2': $(head -c 1000 "$ERR")"
  else
    pass "$1 ($(grep -m1 'error:' "$ERR" | cut -c1-140))"
  fi
}

# expect_echo NAME: the last dxc echoed $IN and exited 0.
expect_echo() {
  if [[ $RC == 0 ]] && cmp -s "$OUT" "$IN"; then
    pass "$1"
  else
    check_fail "$1: exit status $RC, stdout $(head -c 200 "$OUT"); stderr: $(head -c 1000 "$ERR")"
  fi
}

# serial_of PORT: the serial number of the certificate a new TLS connection
# to PORT gets (via openssl s_client).
serial_of() {
  timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}

# ---- verification failures in the client ------------------------------------
start_echo_tls --tls-cert "$C/untrusted.pem" --tls-key "$C/untrusted.key"
p_untrusted=$TLS_PORT
start_echo_tls --tls-cert "$C/wrong.pem" --tls-key "$C/wrong.key"
p_wrong=$TLS_PORT
start_echo_tls --tls-cert "$C/expired.pem" --tls-key "$C/expired.key"
p_expired=$TLS_PORT

dxc untrusted --ca "$C/ca.pem" "wss://localhost:$p_untrusted/" -n 1
expect_refused "certificate from an untrusted CA refused" \
  "TLS certificate verification failed: (unable to get local issuer certificate|self.signed|unable to verify)"
dxc untrusted_sys "wss://localhost:$p_untrusted/" -n 1
expect_refused "not in the system CA store: refused by default" \
  "TLS certificate verification failed: (unable to get local issuer certificate|self.signed|unable to verify)"
dxc wrong_ip --ca "$C/ca.pem" "wss://127.0.0.1:$p_wrong/" -n 1
expect_refused "certificate for wrong.example, connecting to 127.0.0.1: refused" \
  "TLS certificate verification failed: (IP address mismatch|hostname mismatch)"
dxc wrong_name --ca "$C/ca.pem" "wss://localhost:$p_wrong/" -n 1
expect_refused "certificate for wrong.example, connecting to localhost: refused" \
  "TLS certificate verification failed: hostname mismatch"
dxc expired --ca "$C/ca.pem" "wss://localhost:$p_expired/" -n 1
expect_refused "expired certificate refused" "TLS certificate verification failed: certificate has expired"

for p in "$p_untrusted" "$p_wrong" "$p_expired"; do
  dxc insecure --insecure "wss://127.0.0.1:$p/" -n 1
  expect_echo "--insecure connects anyway (port $p)"
  grep -qiE 'warn.*(insecure|verification is off)' "$ERR" && pass "--insecure warns on stderr" ||
    check_fail "--insecure printed no warning: $(head -c 500 "$ERR")"
done
dxc insecure_q --insecure -q "wss://127.0.0.1:$p_wrong/" -n 1
expect_echo "--insecure -q connects"

# ---- plaintext/TLS mixups, garbage, handshake timeout --------------------------
# Stalled clients are checked against a server with a short handshake
# timeout; everything else against one with the default (10 s), so that a
# quick close shows the server reacted to what it got.
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --handshake-timeout 1s
timeout_port=$TLS_PORT
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-port 0
[[ -n "$PORT" ]] || fail "no ws:// port logged with --tls-port"
main_log=$ECHO_LOG
main_pid=$ECHO_PID

dxc ws_on_tls "ws://127.0.0.1:$TLS_PORT/" -n 1
expect_refused "plain ws:// client on the TLS port fails" "400"
dxc wss_on_plain --ca "$C/ca.pem" "wss://localhost:$PORT/" -n 1
expect_refused "wss:// client on the plain ws:// port fails, saying the server did not answer with TLS" \
  "did not answer with TLS|not a TLS|plain ws://"
grep -q 'TLS handshake on the plain ws:// port' "$main_log" && pass "the server logged the TLS client on the plain port" ||
  check_fail "no 'TLS handshake on the plain ws:// port' log line"

# A plain HTTP server (not duplex) that answers a ClientHello with a 400, like
# most web servers on their http port: the client's message must say so.
"$PY" -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.settimeout(5)
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    c.close()
' >"$DX_TMP/http400.port" 2>&1 &
http400_pid=$!
wait_log "$DX_TMP/http400.port" '^[0-9]+$' 10 || fail "the HTTP 400 server did not start"
dxc wss_on_http --ca "$C/ca.pem" "wss://localhost:$(head -n1 "$DX_TMP/http400.port")/" -n 1
expect_refused "wss:// client against a plain HTTP server: says it did not answer with TLS" \
  "did not answer with TLS"
kill "$http400_pid" 2>/dev/null
wait "$http400_pid" 2>/dev/null

run_helper "raw TLS abuse" "$PY" "$here/tls_errors.py" "$TLS_PORT" "$PORT" "$C" "$main_log" "$timeout_port"

dxc after_abuse --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/" -n 1
expect_echo "duplex connect over wss after all that"
proc_gone "$main_pid" && fail "the server died"

# ---- mutual TLS -----------------------------------------------------------------
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-ca "$C/ca.pem"
# With TLS 1.3 the client sends its HTTP request right after its Finished;
# the server drains it before closing, so the alert arrives (no reset).
dxc mtls_none --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/" -n 1
expect_refused "mutual TLS: no client certificate refused" "certificate required"
dxc mtls_other --ca "$C/ca.pem" --cert "$C/client2.pem" --key "$C/client2.key" "wss://localhost:$TLS_PORT/" -n 1
expect_refused "mutual TLS: client certificate from another CA refused" "unknown ca"
# --insecure skips checking the server, so the failure is not about its
# certificate: the message must name the real cause, not blame verification.
dxc mtls_insecure --insecure "wss://localhost:$TLS_PORT/" -n 1
expect_refused "mutual TLS, --insecure, no client certificate: refused" "certificate required"
grep -q 'certificate verification failed' "$ERR" &&
  check_fail "mutual TLS, --insecure: the message blames certificate verification: $(grep -m1 'error:' "$ERR")" ||
  pass "mutual TLS, --insecure: the message does not blame certificate verification"
grep -qE '127\.0\.0\.1:[0-9]+: TLS handshake failed: .*(did not return a certificate|certificate)' "$ECHO_LOG" &&
  pass "mutual TLS: the server logs the rejected handshake with the peer address" ||
  check_fail "mutual TLS: no log line for the rejected handshake"
dxc mtls_ok --ca "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" "wss://localhost:$TLS_PORT/" -n 1
expect_echo "mutual TLS: --cert/--key from the CA accepted"
if timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost -CAfile "$C/ca.pem" \
  -verify_return_error </dev/null >"$DX_TMP/s_client_mtls.out" 2>&1 && grep -q 'Acceptable client certificate CA names' "$DX_TMP/s_client_mtls.out"; then
  grep -A2 'Acceptable client certificate CA names' "$DX_TMP/s_client_mtls.out" | grep -q 'duplex test CA' &&
    pass "mutual TLS: the server names the test CA in its certificate request" ||
    check_fail "mutual TLS: CA names: $(grep -A3 'Acceptable client' "$DX_TMP/s_client_mtls.out")"
else
  grep -q 'Acceptable client certificate CA names' "$DX_TMP/s_client_mtls.out" &&
    pass "mutual TLS: the server sends a certificate request" ||
    check_fail "mutual TLS: no certificate request seen by s_client: $(tail -n 20 "$DX_TMP/s_client_mtls.out")"
fi

# Session resumption must work with client certificates (needs a session
# id context on the server).
sess="$DX_TMP/mtls.sess"
timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost -CAfile "$C/ca.pem" \
  -cert "$C/client.pem" -key "$C/client.key" -tls1_2 -sess_out "$sess" </dev/null >/dev/null 2>&1
if timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost \
  -CAfile "$C/ca.pem" -cert "$C/client.pem" -key "$C/client.key" -tls1_2 -sess_in "$sess" \
  </dev/null 2>&1 | grep -q '^Reused'; then
  pass "mutual TLS: a session is resumed"
else
  check_fail "mutual TLS: session resumption failed"
fi

# ---- certificate chains ---------------------------------------------------------
# A leaf signed by an intermediate CA: served with the intermediate (chain
# file in --tls-cert), a client trusting only the root verifies it; served
# alone, it cannot (so the chain is what made the difference).
start_echo_tls --tls-cert "$C/chain.pem" --tls-key "$C/chained.key"
p_chain=$TLS_PORT
start_echo_tls --tls-cert "$C/chained.pem" --tls-key "$C/chained.key"
p_leaf_only=$TLS_PORT
dxc chain --ca "$C/ca.pem" "wss://localhost:$p_chain/" -n 1
expect_echo "leaf + intermediate in --tls-cert: duplex connect --ca root verifies the chain"
s=$(timeout 10 openssl s_client -connect "127.0.0.1:$p_chain" -servername localhost -showcerts </dev/null 2>/dev/null |
  grep -c 'BEGIN CERTIFICATE')
[[ $s == 2 ]] && pass "the server sends 2 certificates (leaf and intermediate)" ||
  check_fail "the server sent $s certificates, expected 2"
dxc leaf_only --ca "$C/ca.pem" "wss://localhost:$p_leaf_only/" -n 1
expect_refused "leaf without its intermediate: refused by a client trusting only the root" \
  "TLS certificate verification failed: unable to get local issuer certificate"

# ---- hardening: partial wildcards, weak ciphers ---------------------------------
# Names under *.wild.test reach the servers through a CONNECT proxy that
# sends every host to 127.0.0.1 (no DNS needed); the client checks the name
# in the URL.
"$PY" -c '
import socket, sys, threading
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: return c.close()
        head += d
    port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
    u = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
' >"$DX_TMP/proxy.port" 2>&1 &
proxy_pid=$!
DX_SERVER_PIDS+=("$proxy_pid")
wait_log "$DX_TMP/proxy.port" '^[0-9]+$' 10 || fail "the CONNECT proxy did not start"
proxy="http://127.0.0.1:$(head -n1 "$DX_TMP/proxy.port")"
start_echo_tls --tls-cert "$C/wildcard.pem" --tls-key "$C/wildcard.key"
dxc wildcard --proxy "$proxy" --ca "$C/ca.pem" "wss://www.wild.test:$TLS_PORT/" -n 1
expect_echo "certificate for *.wild.test accepted for www.wild.test"
dxc wildcard_deep --proxy "$proxy" --ca "$C/ca.pem" "wss://a.b.wild.test:$TLS_PORT/" -n 1
expect_refused "*.wild.test does not match a.b.wild.test" "TLS certificate verification failed: hostname mismatch"
start_echo_tls --tls-cert "$C/partial.pem" --tls-key "$C/partial.key"
dxc partial --proxy "$proxy" --ca "$C/ca.pem" "wss://www.wild.test:$TLS_PORT/" -n 1
expect_refused "partial wildcard w*.wild.test refused for www.wild.test" \
  "TLS certificate verification failed: hostname mismatch"

# TLS 1.2 clients offering only weak or non-forward-secret suites are
# refused (handshake failure), and the server goes on serving.
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key"
weak_tried=0
for c in AES128-SHA AES256-GCM-SHA384 ECDHE-ECDSA-AES128-SHA ECDHE-ECDSA-AES256-SHA384 \
  DHE-RSA-AES128-GCM-SHA256 DES-CBC3-SHA RC4-SHA; do
  # Suites this openssl cannot even offer (3DES, RC4 in OpenSSL 3) are skipped.
  openssl ciphers -s -tls1_2 "$c" >/dev/null 2>&1 || openssl ciphers "$c" >/dev/null 2>&1 || continue
  weak_tried=$((weak_tried + 1))
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost -tls1_2 \
    -cipher "$c" -CAfile "$C/ca.pem" </dev/null 2>&1)
  if grep -qE "Cipher is $c|Cipher +: $c" <<<"$out"; then
    check_fail "TLS 1.2 with $c only: accepted"
  else
    pass "TLS 1.2 with $c only: refused"
  fi
done
((weak_tried > 0)) || check_fail "openssl could offer none of the weak suites"
out=$(timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost -tls1_2 \
  -CAfile "$C/ca.pem" </dev/null 2>&1)
grep -qE 'Cipher is ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)' <<<"$out" &&
  pass "TLS 1.2 with the defaults: an ECDHE AEAD suite ($(grep -m1 -oE 'Cipher is [A-Z0-9-]+' <<<"$out"))" ||
  check_fail "TLS 1.2 with the defaults: $(grep -m1 -E 'Cipher' <<<"$out")"
dxc after_weak --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/" -n 1
expect_echo "the server still serves after refusing weak suites"
proc_gone "$ECHO_PID" && fail "the server died"

# ---- SIGHUP reload ----------------------------------------------------------------
live="$DX_TMP/live"
mkdir -p "$live"
cp "$C/server.pem" "$live/cert.pem"
cp "$C/server.key" "$live/key.pem"
start_echo_tls --tls-cert "$live/cert.pem" --tls-key "$live/key.pem"
hup_pid=$ECHO_PID
hup_log=$ECHO_LOG
s=$(serial_of "$TLS_PORT")
[[ $s == 1001 ]] && pass "before SIGHUP: serial 1001" || check_fail "before SIGHUP: serial '$s', expected 1001"

# A connection that stays open across the reload (stdin is a FIFO).
fifo="$DX_TMP/hup.fifo"
mkfifo "$fifo"
"$DUPLEX" connect --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/open" <"$fifo" >"$DX_TMP/hup.out" 2>"$DX_TMP/hup.err" &
client_pid=$!
exec 3>"$fifo"
printf 'before reload\n' >&3
wait_log "$DX_TMP/hup.out" '^before reload$' 10 && pass "long-lived connection echoes before the reload" ||
  check_fail "long-lived connection: $(cat "$DX_TMP/hup.out" "$DX_TMP/hup.err")"

cp "$C/server2.pem" "$live/cert.pem"
cp "$C/server2.key" "$live/key.pem"
kill -HUP "$hup_pid"
wait_log "$hup_log" 'TLS certificate reloaded' 10 && pass "SIGHUP: the server logs the reload" ||
  check_fail "SIGHUP: no 'TLS certificate reloaded' log line: $(tail -n 5 "$hup_log")"
s=$(serial_of "$TLS_PORT")
[[ $s == 1002 ]] && pass "after SIGHUP: a new connection gets the new certificate (serial 1002)" ||
  check_fail "after SIGHUP: serial '$s', expected 1002"
subj=$(timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost </dev/null 2>/dev/null |
  openssl x509 -noout -subject 2>/dev/null)
[[ $subj == *"localhost (reloaded)"* ]] && pass "after SIGHUP: the new subject ($subj)" ||
  check_fail "after SIGHUP: subject '$subj'"
printf 'after reload\n' >&3
wait_log "$DX_TMP/hup.out" '^after reload$' 10 && pass "the connection opened before SIGHUP still echoes" ||
  check_fail "old connection after SIGHUP: $(cat "$DX_TMP/hup.out" "$DX_TMP/hup.err")"
dxc after_hup --ca "$C/ca.pem" "wss://localhost:$TLS_PORT/" -n 1
expect_echo "duplex connect --ca verifies the reloaded certificate"

# A broken replacement (key of another certificate): refused, old one kept.
cp "$C/server.key" "$live/key.pem"
kill -HUP "$hup_pid"
wait_log "$hup_log" 'TLS reload failed, keeping the old certificate' 10 &&
  pass "SIGHUP with a mismatched key: the reload is refused with a log line" ||
  check_fail "SIGHUP with a mismatched key: $(tail -n 5 "$hup_log")"
s=$(serial_of "$TLS_PORT")
[[ $s == 1002 ]] && pass "... and the server keeps serving the previous certificate" ||
  check_fail "after a failed reload: serial '$s', expected 1002"
printf 'after failed reload\n' >&3
wait_log "$DX_TMP/hup.out" '^after failed reload$' 10 && pass "the old connection still echoes after a failed reload" ||
  check_fail "old connection after a failed reload: $(cat "$DX_TMP/hup.err")"
exec 3>&-
rc=0
wait_gone "$client_pid" 10 || kill -KILL "$client_pid"
wait "$client_pid" || rc=$?
[[ $rc == 0 ]] && pass "the long-lived client closed cleanly (exit 0)" ||
  check_fail "the long-lived client exited with $rc: $(cat "$DX_TMP/hup.err")"

# With several threads, every loop gets the new certificate.
cp "$C/server.pem" "$live/cert.pem"
cp "$C/server.key" "$live/key.pem"
start_echo_tls --tls-cert "$live/cert.pem" --tls-key "$live/key.pem" --threads 3
cp "$C/server2.pem" "$live/cert.pem"
cp "$C/server2.key" "$live/key.pem"
kill -HUP "$ECHO_PID"
wait_log "$ECHO_LOG" 'TLS certificate reloaded' 10 || check_fail "--threads 3: no reload log line"
sleep 0.3 # every thread's loop handles the reload
serials=""
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do serials+="$(serial_of "$TLS_PORT") "; done
[[ $serials == *1002* && $serials != *1001* ]] &&
  pass "--threads 3: 12 new connections after SIGHUP all get serial 1002" ||
  check_fail "--threads 3: serials after SIGHUP: $serials"

finish
