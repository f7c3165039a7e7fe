#!/usr/bin/env bash
# duplex serve behind Debian's nginx, configured by docs/nginx/duplex.conf
# itself (only its ports changed, and its standby line uncommented):
# tests/e2e/hub_nginx.py checks SSE without buffering, Last-Event-ID resume,
# WebSocket, long-polling and POST /http/request through nginx; then the
# first hub stops and the standby takes over (epoch_changed, live again).
# Chromium loads the chat page through nginx on WebSocket, SSE and long-poll
# (tests/interop/web_nginx.mjs). nginx runs in the foreground, everything in
# a temp prefix.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
NGINX=${DX_NGINX:-/usr/sbin/nginx}
[[ -x "$NGINX" ]] || fail "no $NGINX: run scripts/deps.sh --test (package nginx)"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
"$PY" -c 'import websockets' 2>/dev/null || fail "$PY lacks websockets: run scripts/deps.sh --test"
key="nginx-key-$RANDOM"

start_serve --api-key "$key"
hub1=$PORT
hub1_pid=$SERVE_PID
start_serve --api-key "$key"
hub2=$PORT

# The documented config with this run's ports: one source of truth.
conf="$DX_SOURCE_DIR/docs/nginx/duplex.conf"
prefix="$DX_TMP/nginx"
mkdir -p "$prefix/tmp"
# A port nobody listens on now (nginx binds it a moment later; retried below).
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
write_conf() {
  sed -e "s/server 127\.0\.0\.1:8080;/server 127.0.0.1:$hub1;/" \
    -e "s/#server 127\.0\.0\.1:8081 backup;/server 127.0.0.1:$hub2 backup;/" \
    -e "s/listen 80;/listen 127.0.0.1:$1;/" "$conf" >"$prefix/duplex.conf"
  local want
  for want in "server 127.0.0.1:$hub1;" "server 127.0.0.1:$hub2 backup;" "listen 127.0.0.1:$1;"; do
    grep -qF "$want" "$prefix/duplex.conf" || fail "docs/nginx/duplex.conf changed: no line to make '$want' from"
  done
  # As root, nginx's workers would become nobody, who cannot use the temp prefix.
  local user=""
  (($(id -u) == 0)) && user="user $(id -un);"
  cat >"$prefix/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
$user
pid $prefix/nginx.pid;
error_log $prefix/error.log info;
events { worker_connections 256; }
http {
  access_log $prefix/access.log;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  include $prefix/duplex.conf;
}
EOF
}

nginx_pid=""
for _ in 1 2 3 4 5; do
  nport=$(free_port)
  write_conf "$nport"
  : >"$prefix/error.log" # this attempt's log only
  "$NGINX" -t -q -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" 2>"$prefix/check.log" ||
    fail "nginx -t rejects the config: $(cat "$prefix/check.log" "$prefix/error.log" 2>/dev/null)"
  "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" </dev/null >"$prefix/stdout.log" 2>&1 &
  pid=$!
  deadline=$(($(now_us) + 10000000)) # up to 10 s for nginx to answer
  while (($(now_us) < deadline)); do
    # nginx's answer, not that of whoever else may have the port.
    if curl -sf -o /dev/null -D - --max-time 1 "http://127.0.0.1:$nport/healthz" | grep -qi '^server: nginx'; then
      nginx_pid=$pid
      break
    fi
    proc_gone "$pid" && break
    sleep 0.1
  done
  [[ -n "$nginx_pid" ]] && break
  stop_server "$pid" || true
  grep -q "Address already in use" "$prefix/error.log" || fail "nginx did not start: $(tail -n 20 "$prefix/error.log")"
  log "port $nport was taken meanwhile; another"
done
[[ -n "$nginx_pid" ]] || fail "nginx found no free port in 5 attempts"
DX_SERVER_PIDS+=("$nginx_pid")
DX_SERVER_LOGS+=("$prefix/error.log")
log "nginx pid $nginx_pid on port $nport in front of hubs $hub1 and $hub2 (standby)"

run_helper "through nginx" timeout -k 5 90 "$PY" "$here/hub_nginx.py" "$nport" "$key" main "$DX_TMP/last-id"

run_helper "Chromium through nginx" timeout -k 5 90 node "$DX_SOURCE_DIR/tests/interop/web_nginx.mjs" "$nport"

# The access log shows each transport went through nginx.
for want in '"GET /sse?topics=' '"GET /ws HTTP/1.1" 101' '"GET /poll?topics=' '"POST /http/request HTTP/1.1" 200'; do
  if grep -qF "$want" "$prefix/access.log"; then pass "nginx access log has $want"; else check_fail "nginx access log lacks $want"; fi
done

# The first hub goes; nginx sends everyone to the standby.
[[ -s "$DX_TMP/last-id" ]] || fail "the main section wrote no last event id"
stop_server "$hub1_pid" || check_fail "the first hub did not exit cleanly"
reap_server "$hub1_pid" || true
run_helper "failover through nginx" timeout -k 5 60 "$PY" "$here/hub_nginx.py" "$nport" "$key" failover "$DX_TMP/last-id"

if grep -E '\[(emerg|alert|crit)\]' "$prefix/error.log"; then
  check_fail "nginx logged an emergency, alert or critical error"
else
  pass "nginx logged no emerg/alert/crit"
fi
finish
