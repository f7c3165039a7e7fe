#!/usr/bin/env bash
# duplex serve behind Debian's nginx, configured by docs/nginx/duplex.conf
# itself (only its ports changed and its standby line taken in), in front of
# a hub and a standby: tests/e2e/hub_nginx.py checks SSE without buffering,
# Last-Event-ID resume, WebSocket, long-polling and POST /http/request
# through nginx; Chromium loads the chat page through it on WebSocket, SSE
# and long-poll (tests/interop/web_nginx.mjs); then the first hub stops and
# the standby takes over (epoch_changed, live again). nginx runs in the
# foreground, everything in a temp prefix. (Several --redis nodes behind
# docs/nginx/cluster.conf: test_cluster_script.)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
NGINX=${DX_NGINX:-/usr/sbin/nginx}
[[ -x "$NGINX" ]] || fail "no $NGINX: run scripts/deps.sh --test (package nginx)"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
"$PY" -c 'import websockets' 2>/dev/null || fail "$PY lacks websockets: run scripts/deps.sh --test"
key="nginx-key-$RANDOM"
conf="$DX_SOURCE_DIR/docs/nginx/duplex.conf"

# A port nobody listens on now (nginx binds it a moment later; retried below).
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_nginx NAME 'FROM=>TO'...: run nginx with docs/nginx/duplex.conf, its
# text FROM replaced by TO (fixed strings; each must occur: the documented
# config is the tested one) and `listen` on a free loopback port, in the
# foreground, everything under $DX_TMP/NAME (access.log names the upstream
# of each request). Sets NPORT and NPREFIX.
start_nginx() {
  local prefix="$DX_TMP/$1" text r from to user="" pid nport deadline _
  shift
  mkdir -p "$prefix/tmp"
  # As root, nginx's workers would become nobody, who cannot use the temp prefix.
  (($(id -u) == 0)) && user="user $(id -un);"
  for _ in 1 2 3 4 5; do
    nport=$(free_port)
    text=$(<"$conf")
    for r in "$@" "listen 80;=>listen 127.0.0.1:$nport;"; do
      from=${r%%=>*} to=${r#*=>}
      [[ "$text" == *"$from"* ]] || fail "docs/nginx/duplex.conf has no '$from' (to make '$to' of)"
      text=${text//"$from"/"$to"}
    done
    printf '%s\n' "$text" >"$prefix/duplex.conf"
    cat >"$prefix/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
$user
pid $prefix/nginx.pid;
error_log $prefix/error.log info;
events { worker_connections 256; }
http {
  log_format upstream '\$request \$status upstream=\$upstream_addr';
  access_log $prefix/access.log upstream;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  include $prefix/duplex.conf;
}
EOF
    : >"$prefix/error.log" # this attempt's log only
    "$NGINX" -t -q -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" 2>"$prefix/check.log" ||
      fail "nginx -t rejects the config: $(cat "$prefix/check.log" "$prefix/error.log" 2>/dev/null)"
    "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" </dev/null >"$prefix/stdout.log" 2>&1 &
    pid=$!
    deadline=$(($(now_us) + 10000000)) # up to 10 s for nginx to answer
    while (($(now_us) < deadline)); do
      # nginx's answer, not that of whoever else may have the port.
      if curl -sf -o /dev/null -D - --max-time 1 "http://127.0.0.1:$nport/healthz" | grep -qi '^server: nginx'; then
        DX_SERVER_PIDS+=("$pid")
        DX_SERVER_LOGS+=("$prefix/error.log")
        NPORT=$nport
        NPREFIX=$prefix
        log "nginx pid $pid on port $nport ($prefix)"
        return 0
      fi
      proc_gone "$pid" && break
      sleep 0.1
    done
    stop_server "$pid" || true
    grep -q "Address already in use" "$prefix/error.log" || fail "nginx did not start: $(tail -n 20 "$prefix/error.log")"
    log "port $nport was taken meanwhile; another"
  done
  fail "nginx found no free port in 5 attempts"
}

# nginx_clean NAME: no emerg/alert/crit in that nginx's error log.
nginx_clean() {
  if grep -E '\[(emerg|alert|crit)\]' "$DX_TMP/$1/error.log"; then
    check_fail "$1: nginx logged an emergency, alert or critical error"
  else
    pass "$1: nginx logged no emerg/alert/crit"
  fi
}

start_serve --api-key "$key"
# shellcheck disable=SC2153 # start_serve sets PORT
hub1=$PORT
hub1_pid=$SERVE_PID
start_serve --api-key "$key"
hub2=$PORT
start_nginx standby "server 127.0.0.1:8080;=>server 127.0.0.1:$hub1;" \
  "#server 127.0.0.1:8081 backup;=>server 127.0.0.1:$hub2 backup;"

run_helper "through nginx" timeout -k 5 90 "$PY" "$here/hub_nginx.py" "$NPORT" "$key" main "$DX_TMP/last-id"
run_helper "Chromium through nginx" timeout -k 5 90 node "$DX_SOURCE_DIR/tests/interop/web_nginx.mjs" "$NPORT"

# The access log shows each transport went through nginx.
for want in "GET /sse?topics=" "GET /ws HTTP/1.1 101" "GET /poll?topics=" "POST /http/request HTTP/1.1 200"; do
  if grep -qF "$want" "$NPREFIX/access.log"; then pass "access log has $want"; else check_fail "access log lacks $want"; fi
done

# The first hub goes; nginx sends everyone to the standby.
[[ -s "$DX_TMP/last-id" ]] || fail "the main section wrote no last event id"
stop_server "$hub1_pid" || check_fail "the first hub did not exit cleanly"
reap_server "$hub1_pid" || true
run_helper "failover through nginx" timeout -k 5 60 "$PY" "$here/hub_nginx.py" "$NPORT" "$key" failover "$DX_TMP/last-id"
nginx_clean standby
finish
