# shellcheck shell=bash
# Test certificates for the TLS tests, made with the `openssl` command at
# test time (nothing secret is kept in the repository):
#
#   source "$DX_SOURCE_DIR/tests/tls_certs.sh"
#   make_test_certs "$DX_TMP/certs"
#
# writes into DIR (keys are EC P-256, unencrypted; every .pem leaf file holds
# the certificate only, its key is NAME.key):
#
#   ca.pem ca.key            the test CA ("duplex test CA")
#   server.pem server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                            signed by the CA, serial 0x1001
#   server2.pem server2.key  the same names, another key, CN=localhost
#                            (reloaded), serial 0x1002 (for SIGHUP reload)
#   expired.pem expired.key  the same names, valid 2020-01-01..2020-12-31
#   wrong.pem wrong.key      CN=wrong.example, SAN DNS:wrong.example only
#   ca2.pem ca2.key          a second CA that nobody trusts
#   untrusted.pem .key       localhost/127.0.0.1, signed by ca2
#   client.pem client.key    CN=duplex test client, clientAuth, signed by the CA
#   client2.pem client2.key  the same, signed by ca2 (not trusted by the server)
#   inter.pem inter.key      an intermediate CA ("duplex test intermediate
#                            CA"), signed by ca, pathlen 0
#   chained.pem chained.key  localhost/127.0.0.1, signed by inter, serial
#                            0x3001 (the leaf alone: not enough for clients
#                            that trust only ca.pem)
#   chain.pem                chained.pem followed by inter.pem: the chain
#                            file for --tls-cert (key: chained.key)
#   wildcard.pem .key        SAN DNS:*.wild.test (serial 0x1006)
#   partial.pem .key         SAN DNS:w*.wild.test, a partial wildcard that
#                            clients must not accept (serial 0x1007)
#
# Returns non-zero (with openssl's output on stderr) if anything failed.

# _dx_openssl LOG ARGS...: run openssl, keeping its chatter in LOG.
_dx_openssl() {
  local log=$1
  shift
  if ! openssl "$@" >>"$log" 2>&1; then
    printf 'tls_certs: openssl %s failed:\n' "$*" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}

# _dx_key DIR NAME: a new P-256 key in DIR/NAME.key.
_dx_key() {
  _dx_openssl "$1/openssl.log" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1/$2.key"
}

# _dx_ca DIR NAME CN: a self-signed CA.
_dx_ca() {
  local dir=$1 name=$2 cn=$3
  _dx_key "$dir" "$name" &&
    _dx_openssl "$dir/openssl.log" req -x509 -new -key "$dir/$name.key" -sha256 -days 3650 \
      -subj "/O=duplex tests/CN=$cn" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" \
      -out "$dir/$name.pem"
}

# _dx_subca DIR NAME PARENT CN SERIAL: an intermediate CA signed by PARENT.
_dx_subca() {
  local dir=$1 name=$2 parent=$3 cn=$4 serial=$5
  cat >"$dir/$name.ext" <<EOF
[ subca ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  _dx_key "$dir" "$name" &&
    _dx_openssl "$dir/openssl.log" req -new -key "$dir/$name.key" -subj "/O=duplex tests/CN=$cn" \
      -out "$dir/$name.csr" &&
    _dx_openssl "$dir/openssl.log" x509 -req -in "$dir/$name.csr" -CA "$dir/$parent.pem" \
      -CAkey "$dir/$parent.key" -set_serial "0x$serial" -days 3650 -sha256 \
      -extfile "$dir/$name.ext" -extensions subca -out "$dir/$name.pem"
}

# _dx_leaf DIR NAME CA CN SAN EKU SERIAL [STARTDATE ENDDATE]: a leaf
# certificate signed by CA (with `openssl ca`, which, unlike `openssl x509
# -req` in OpenSSL 3.0, takes explicit validity dates: the expired one).
_dx_leaf() {
  local dir=$1 name=$2 ca=$3 cn=$4 san=$5 eku=$6 serial=$7 start=${8:-} end=${9:-}
  local db="$dir/ca-db.$name"
  mkdir -p "$db" || return 1
  : >"$db/index.txt"
  printf '%s\n' "$serial" >"$db/serial"
  cat >"$db/ca.cnf" <<EOF
[ ca ]
default_ca = testca
[ testca ]
dir = $db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $dir/$ca.pem
private_key = $dir/$ca.key
default_md = sha256
default_days = 825
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ anything ]
commonName = supplied
organizationName = optional
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = $eku
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  [[ -n "$san" ]] && printf 'subjectAltName = %s\n' "$san" >>"$db/ca.cnf"
  local dates=()
  [[ -n "$start" ]] && dates=(-startdate "$start" -enddate "$end")
  _dx_key "$dir" "$name" &&
    _dx_openssl "$dir/openssl.log" req -new -key "$dir/$name.key" -subj "/O=duplex tests/CN=$cn" \
      -out "$db/req.csr" &&
    _dx_openssl "$dir/openssl.log" ca -batch -notext -config "$db/ca.cnf" -in "$db/req.csr" \
      -out "$dir/$name.pem" "${dates[@]}"
}

make_test_certs() {
  local dir=$1
  command -v openssl >/dev/null || {
    echo "tls_certs: the openssl command is not installed" >&2
    return 1
  }
  mkdir -p "$dir" || return 1
  : >"$dir/openssl.log"
  local names="DNS:localhost,IP:127.0.0.1"
  _dx_ca "$dir" ca "duplex test CA" &&
    _dx_ca "$dir" ca2 "duplex untrusted CA" &&
    _dx_leaf "$dir" server ca localhost "$names" serverAuth 1001 &&
    _dx_leaf "$dir" server2 ca "localhost (reloaded)" "$names" serverAuth 1002 &&
    _dx_leaf "$dir" expired ca localhost "$names" serverAuth 1003 20200101000000Z 20201231235959Z &&
    _dx_leaf "$dir" wrong ca wrong.example "DNS:wrong.example" serverAuth 1004 &&
    _dx_leaf "$dir" untrusted ca2 localhost "$names" serverAuth 2001 &&
    _dx_leaf "$dir" client ca "duplex test client" "" clientAuth 1005 &&
    _dx_leaf "$dir" client2 ca2 "duplex test client" "" clientAuth 2002 &&
    _dx_subca "$dir" inter ca "duplex test intermediate CA" 3000 &&
    _dx_leaf "$dir" chained inter localhost "$names" serverAuth 3001 &&
    cat "$dir/chained.pem" "$dir/inter.pem" >"$dir/chain.pem" &&
    _dx_leaf "$dir" wildcard ca "*.wild.test" "DNS:*.wild.test" serverAuth 1006 &&
    _dx_leaf "$dir" partial ca "w*.wild.test" "DNS:w*.wild.test" serverAuth 1007
}

# start_echo_tls [ARGS...]: like start_echo (lib.sh, which must be sourced
# first), for a server with TLS: start "duplex echo --host 127.0.0.1
# --port 0 ARGS" and wait (up to 10 s) for "listening on wss://127.0.0.1:P".
# Sets and exports TLS_PORT, ECHO_PID and ECHO_LOG, and PORT too when the
# server also listens on ws:// (--tls-port). The server is stopped at exit.
start_echo_tls() {
  [[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX (build it first; DX_BUILD_DIR=$DX_BUILD_DIR)"
  DX_SERVER_SEQ=$((DX_SERVER_SEQ + 1))
  ECHO_LOG="$DX_TMP/server.$DX_SERVER_SEQ.log"
  : >"$ECHO_LOG"
  "$DUPLEX" echo --host 127.0.0.1 --port 0 "$@" </dev/null >"$ECHO_LOG.out" 2>"$ECHO_LOG" &
  ECHO_PID=$!
  DX_SERVER_PIDS+=("$ECHO_PID")
  DX_SERVER_LOGS+=("$ECHO_LOG")
  local i line=""
  for ((i = 0; i < 200; i++)); do
    line=$(grep -m1 -oE 'listening on wss://127\.0\.0\.1:[0-9]+' "$ECHO_LOG" || true)
    [[ -n "$line" ]] && break
    if proc_gone "$ECHO_PID"; then
      local rc=0
      reap_server "$ECHO_PID" || rc=$?
      fail "server 'duplex echo $*' exited with status $rc before listening: $(tail -n 5 "$ECHO_LOG")"
    fi
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "server 'duplex echo $*' printed no 'listening on wss://127.0.0.1:PORT' within 10 s"
  TLS_PORT=${line##*:}
  line=$(grep -m1 -oE 'listening on ws://127\.0\.0\.1:[0-9]+' "$ECHO_LOG" || true)
  PORT=${line##*:}
  export TLS_PORT PORT ECHO_PID ECHO_LOG
  log "server pid $ECHO_PID listening on wss port $TLS_PORT${PORT:+ and ws port $PORT} (args: $*)"
}

# wait_log FILE ERE [SECONDS]: wait (default 5 s) until FILE has a line
# matching ERE.
wait_log() {
  local t0
  t0=$(now_us)
  until grep -qE -- "$2" "$1" 2>/dev/null; do
    (($(now_us) - t0 < ${3:-5} * 1000000)) || return 1
    sleep 0.05
  done
}
