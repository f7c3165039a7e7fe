#!/usr/bin/env bash
# duplex serve nodes on Redis over TLS (rediss://...?ca=) and on a Redis with
# a password (issue 14): publications cross nodes; a wrong password or an
# untrusted certificate gives a clear log line and /readyz 503, no crash.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
helper="$DX_SOURCE_DIR/tests/interop/hub_redis_faults.mjs"

# wait_logged LOG TEXT: TEXT appears in LOG within 10 s.
wait_logged() { wait_for 10 grep -qF -- "$2" "$1"; }
ready_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1/readyz"; }

# TLS: two nodes on rediss:// trusting the test CA.
start_redis --tls
tls_port=$REDIS_PORT
tls_url=$REDIS_URL
start_serve --redis "$tls_url" --api-key akey
a=$PORT
start_serve --redis "$tls_url" --api-key akey --threads 2
b=$PORT
run_helper "TLS nodes" node "$helper" cross "$a" "$b" akey

# A password with characters that need %-encoding in the URL.
start_redis --password 'p@ss:w/rd%1'
pw_port=$REDIS_PORT
pw_url=$REDIS_URL
start_serve --redis "$pw_url" --api-key akey
a=$PORT
start_serve --redis "$pw_url" --api-key akey
b=$PORT
run_helper "password nodes" node "$helper" cross "$a" "$b" akey

# A wrong password: the node runs, says why, and is not ready.
start_serve --redis "redis://:wrong@127.0.0.1:$pw_port" --api-key akey
bad=$PORT
bad_log=$SERVE_LOG
if wait_logged "$bad_log" "auth failed: WRONGPASS"; then
  pass "a wrong password: the log says 'auth failed: WRONGPASS ...'"
else
  check_fail "a wrong password: no 'auth failed' log line: $(grep -i redis "$bad_log" | head -n 5)"
fi
if grep -qF 'p@ss' "$bad_log" || grep -qF 'wrong@' "$bad_log"; then
  check_fail "a password appears in the log"
else
  pass "no password in the log"
fi
st=$(ready_status "$bad")
if [[ $st == 503 ]]; then pass "a wrong password: /readyz 503"; else check_fail "a wrong password: /readyz $st"; fi
pub=$(curl -s --max-time 5 -H 'Authorization: Bearer akey' -d '{"topic":"t","data":1}' "http://127.0.0.1:$bad/api/publish")
if [[ $pub == *'"code":"unavailable"'* ]]; then
  pass "a wrong password: a publish gets unavailable"
else
  check_fail "a wrong password: publish answered $pub"
fi

# TLS with a CA that did not sign Redis's certificate: refused, said, not ready.
source "$DX_SOURCE_DIR/tests/tls_certs.sh"
make_test_certs "$DX_TMP/other-ca" >/dev/null 2>&1 || fail "could not make a second CA"
start_serve --redis "rediss://127.0.0.1:$tls_port?ca=$DX_TMP/other-ca/ca.pem" --api-key akey
untrusted=$PORT
if wait_logged "$SERVE_LOG" "TLS handshake failed: certificate"; then
  pass "an untrusted certificate: the log says 'TLS handshake failed: certificate ...'"
else
  check_fail "an untrusted certificate: no log line: $(grep -i redis "$SERVE_LOG" | head -n 5)"
fi
st=$(ready_status "$untrusted")
if [[ $st == 503 ]]; then pass "an untrusted certificate: /readyz 503"; else check_fail "an untrusted certificate: /readyz $st"; fi

# The refused nodes keep trying and stay up (finish fails on a dead server).
sleep 1
finish
