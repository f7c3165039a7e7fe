# Shared by the side-by-side benchmark scripts (compare.sh, tls_deflate.sh,
# latency.sh): starting a server pinned to CPU 0 and stopping it again.
# Source it; it sets and reads `server_pid` and `server_status`.

server_pid="" server_status=0

# start_pinned PORT LOG CMD...: run CMD on CPU 0 (taskset execs it, so
# server_pid is the server's own PID) with stderr appended to LOG, and wait
# up to 10 s until something listens on PORT. Returns 1 if it never does.
start_pinned() {
  local port=$1 log=$2
  shift 2
  taskset -c 0 "$@" >/dev/null 2>>"$log" &
  server_pid=$!
  for _ in $(seq 100); do
    [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# stop_pinned [PORT]: SIGTERM, then SIGKILL after 5 s; server_status gets
# its exit status. With PORT, also wait until the port is free again (the
# next server may take the same one).
stop_pinned() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  server_status=0
  wait "$server_pid" 2>/dev/null || server_status=$?
  server_pid=""
  [[ -n "${1:-}" ]] || return 0
  for _ in $(seq 50); do [[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]] && break; sleep 0.1; done
}
