#!/usr/bin/env bash
# End to end: `duplex connect` through an HTTP CONNECT proxy
# (connect_proxy.py, which reaches every target host at 127.0.0.1, so names
# like backend.test work offline):
#   - --proxy for ws:// and for wss:// (TLS inside the tunnel, certificate
#     checked against the target's name), credentials in the proxy URL
#     (Proxy-Authorization: Basic; 407 without them), any 2xx accepted;
#   - http_proxy / HTTP_PROXY for ws://, https_proxy / HTTPS_PROXY for
#     wss://, no_proxy / NO_PROXY (names, .domains, *, :port), loopback
#     targets never proxied, --proxy '' to ignore the environment, a bad
#     proxy in the environment is a usage error naming the variable.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"
# shellcheck source=SCRIPTDIR/../tls_certs.sh
source "$here/../tls_certs.sh"

[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY

# dxc NAME INPUT_FILE ARGS...: run `duplex connect ARGS` (environment
# assignments may come first via `env`); sets OUT, ERR and RC.
dxc() { local n=$1 i=$2; shift 2; capture "$n" "$i" 60 env "$@"; }

# start_proxy [ARGS...]: sets PROXY_PORT and PROXY_LOG.
start_proxy() {
  PROXY_LOG="$DX_TMP/proxy.$RANDOM.log"
  : >"$PROXY_LOG"
  "$PY" "$here/connect_proxy.py" "$@" >"$PROXY_LOG" 2>&1 &
  DX_SERVER_PIDS+=("$!")
  DX_SERVER_LOGS+=("$PROXY_LOG")
  local i
  PROXY_PORT=
  for ((i = 0; i < 200; i++)); do
    PROXY_PORT=$(grep -m1 -oE '^port [0-9]+' "$PROXY_LOG" | grep -oE '[0-9]+$' || true)
    [[ -n "$PROXY_PORT" ]] && return 0
    sleep 0.05
  done
  fail "connect_proxy.py printed no port: $(cat "$PROXY_LOG")"
}

# connects LOG: the number of CONNECT lines in a proxy log.
connects() { grep -c '^CONNECT ' "$1" || true; }

C="$DX_TMP/certs"
make_test_certs "$C" || fail "could not make the test certificates"
start_echo_tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-port 0
WS_PORT=$PORT
WSS_PORT=$TLS_PORT
[[ -n "$WS_PORT" && -n "$WSS_PORT" ]] || fail "no ws/wss ports: $(cat "$ECHO_LOG")"

start_proxy
P=$PROXY_PORT
PLOG=$PROXY_LOG
in="$DX_TMP/in"
printf 'through the proxy\n' >"$in"

# ---- --proxy ----
dxc ws_proxy "$in" "$DUPLEX" connect --proxy "http://127.0.0.1:$P" "ws://backend.test:$WS_PORT/" -n 1
expect "--proxy: ws:// through the tunnel" 0 "$in"
grep -q "^CONNECT backend.test:$WS_PORT auth=-$" "$PLOG" && pass "--proxy: CONNECT backend.test:$WS_PORT, no credentials" ||
  check_fail "--proxy: proxy log: $(cat "$PLOG")"

dxc wss_proxy "$in" "$DUPLEX" connect --proxy "HTTP://127.0.0.1:$P/" --ca "$C/ca.pem" \
  "wss://localhost:$WSS_PORT/" -n 1
expect "--proxy: wss:// through the tunnel (TLS verified inside it)" 0 "$in"
grep -q "^CONNECT localhost:$WSS_PORT " "$PLOG" && pass "--proxy: CONNECT localhost:$WSS_PORT for wss" ||
  check_fail "--proxy wss: proxy log: $(cat "$PLOG")"

dxc wss_proxy_untrusted "$in" "$DUPLEX" connect --proxy "http://127.0.0.1:$P" \
  "wss://localhost:$WSS_PORT/" -n 1 --timeout 5s
expect "--proxy: wss:// through the tunnel still verifies the certificate" 1 /dev/null
expect_err "--proxy: certificate error named" '^duplex: error: .*certificate'

# credentials
start_proxy --auth 'user:p@ss word'
AP=$PROXY_PORT
ALOG=$PROXY_LOG
dxc auth_ok "$in" "$DUPLEX" connect --proxy "http://user:p%40ss%20word@127.0.0.1:$AP" \
  "ws://backend.test:$WS_PORT/" -n 1
expect "--proxy user:pass@: Proxy-Authorization accepted" 0 "$in"
want_auth="Basic $(printf 'user:p@ss word' | base64)"
grep -qF "auth=$want_auth" "$ALOG" && pass "--proxy user:pass@: percent-decoded, Basic" ||
  check_fail "credentials: proxy log: $(cat "$ALOG")"
dxc auth_missing "$in" "$DUPLEX" connect --proxy "http://127.0.0.1:$AP" "ws://backend.test:$WS_PORT/" -n 1
expect "--proxy without credentials: exit 1" 1 /dev/null
expect_err "--proxy without credentials: 407 named" '^duplex: error: the proxy refused CONNECT to backend\.test:[0-9]+ with HTTP status 407$'

# any 2xx
start_proxy --status 'HTTP/1.0 204 Tunnel ready'
dxc status_204 "$in" "$DUPLEX" connect --proxy "127.0.0.1:$PROXY_PORT" "ws://backend.test:$WS_PORT/" -n 1
expect "--proxy host:port (no scheme) answering 204: tunnel open" 0 "$in"

# ---- the environment ----
n0=$(connects "$PLOG")
dxc env_http "$in" http_proxy="http://127.0.0.1:$P" "$DUPLEX" connect "ws://backend.test:$WS_PORT/" -n 1
expect "http_proxy for ws://" 0 "$in"
expect_err "http_proxy: a status line says so" '^duplex: using the proxy in \$http_proxy$'
(($(connects "$PLOG") == n0 + 1)) && pass "http_proxy: one CONNECT" || check_fail "http_proxy: proxy log: $(cat "$PLOG")"

dxc env_HTTP "$in" HTTP_PROXY="http://127.0.0.1:$P" "$DUPLEX" connect "ws://backend.test:$WS_PORT/" -n 1
expect "HTTP_PROXY for ws://" 0 "$in"
(($(connects "$PLOG") == n0 + 2)) && pass "HTTP_PROXY: one CONNECT" || check_fail "HTTP_PROXY: proxy log: $(cat "$PLOG")"

dxc env_https "$in" https_proxy="http://127.0.0.1:$P" http_proxy="http://127.0.0.1:1" \
  "$DUPLEX" connect --ca "$C/ca.pem" "wss://localhost.test:$WSS_PORT/" -n 1 --insecure
expect "https_proxy for wss:// (not http_proxy)" 0 "$in"
grep -q "^CONNECT localhost.test:$WSS_PORT " "$PLOG" && pass "https_proxy: CONNECT for wss" ||
  check_fail "https_proxy: proxy log: $(cat "$PLOG")"

dxc env_HTTPS "$in" HTTPS_PROXY="http://127.0.0.1:$P" "$DUPLEX" connect --insecure \
  "wss://backend.test:$WSS_PORT/" -n 1
expect "HTTPS_PROXY for wss://" 0 "$in"

n0=$(connects "$PLOG")
dxc env_loopback "$in" http_proxy="http://127.0.0.1:$P" "$DUPLEX" connect "ws://127.0.0.1:$WS_PORT/" -n 1
expect "http_proxy: a loopback target goes direct" 0 "$in"
dxc env_localhost "$in" http_proxy="http://127.0.0.1:$P" "$DUPLEX" connect "ws://localhost:$WS_PORT/" -n 1
expect "http_proxy: localhost goes direct" 0 "$in"
(($(connects "$PLOG") == n0)) && pass "loopback targets: no CONNECT" || check_fail "loopback: proxy log: $(cat "$PLOG")"

# no_proxy: a direct connection to backend.test fails its DNS lookup, which
# is how a bypass shows (no CONNECT either).
no_proxy_case() { # NAME VAR=VALUE
  local name=$1 n
  n=$(connects "$PLOG")
  dxc "np_$name" /dev/null http_proxy="http://127.0.0.1:$P" "$2" "$DUPLEX" connect --timeout 5s \
    "ws://backend.test:$WS_PORT/"
  if [[ $RC == 1 ]] && grep -q 'DNS lookup failed for backend.test' "$ERR" && (($(connects "$PLOG") == n)); then
    pass "$2: backend.test not proxied"
  else
    check_fail "$2: exit $RC, stderr $(cat "$ERR"), $(($(connects "$PLOG") - n)) CONNECT(s)"
  fi
}
no_proxy_case name no_proxy=backend.test
no_proxy_case domain 'no_proxy=example.org, .test'
no_proxy_case star NO_PROXY='*'
no_proxy_case port "no_proxy=backend.test:$WS_PORT"
n0=$(connects "$PLOG")
dxc np_other "$in" http_proxy="http://127.0.0.1:$P" no_proxy="other.test,backend.test:1,end.test" \
  "$DUPLEX" connect "ws://backend.test:$WS_PORT/" -n 1
expect "no_proxy with other names, another port, a mere suffix: proxied" 0 "$in"
(($(connects "$PLOG") == n0 + 1)) && pass "no_proxy non-matches: CONNECT" || check_fail "proxy log: $(cat "$PLOG")"

n0=$(connects "$PLOG")
dxc np_flag /dev/null http_proxy="http://127.0.0.1:$P" "$DUPLEX" connect --proxy '' --timeout 5s \
  "ws://backend.test:$WS_PORT/"
if [[ $RC == 1 ]] && grep -q 'DNS lookup failed' "$ERR" && (($(connects "$PLOG") == n0)); then
  pass "--proxy '': the environment is ignored"
else
  check_fail "--proxy '': exit $RC, $(cat "$ERR")"
fi

dxc env_bad /dev/null https_proxy="socks5://127.0.0.1:1080" "$DUPLEX" connect "wss://backend.test/"
[[ $RC == 2 ]] && grep -q 'https_proxy' "$ERR" && grep -q 'http://' "$ERR" &&
  pass "a bad proxy in the environment: usage error naming the variable" ||
  check_fail "bad env proxy: exit $RC, $(cat "$ERR")"

finish
