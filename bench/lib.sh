# Shared by the side-by-side benchmark scripts (compare.sh, tls_deflate.sh,
# latency.sh, idle_mem.sh): starting a server pinned to CPU 0 and stopping
# it again, and building the uWebSockets peer. Source it; it sets and reads
# `server_pid` and `server_status`.

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

# build_uws UWS_DIR BIN: build bench/peers/uws_echo.cpp against a
# uWebSockets checkout (uSockets in its uSockets/ submodule or at
# USOCKETS_DIR) into BIN/uws_echo; sets uws_rev. Nothing of uWS is copied
# into this repository. Returns 1 (with a message) if the checkout is not one.
build_uws() {
  local uws_dir=$1 bin=$2 here usockets_dir
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  usockets_dir="${USOCKETS_DIR:-$uws_dir/uSockets}"
  if [[ ! -f "$uws_dir/src/App.h" || ! -f "$usockets_dir/src/libusockets.h" ]]; then
    echo "UWS_DIR=$uws_dir needs src/App.h and uSockets (in uSockets/ or USOCKETS_DIR) with src/libusockets.h" >&2
    return 1
  fi
  uws_rev="$(git -C "$uws_dir" describe --tags --always 2>/dev/null || echo ?), uSockets $(git -C "$usockets_dir" describe --tags --always 2>/dev/null || echo ?)"
  echo "building uws_echo from $uws_dir ($uws_rev)" >&2
  rm -rf "$bin/uws-obj" && mkdir -p "$bin/uws-obj"
  # uSockets as C (plain TCP, epoll), uWS header-only over it.
  (cd "$bin/uws-obj" && gcc -O3 -DLIBUS_NO_SSL -std=c11 -I"$usockets_dir/src" -c \
    "$usockets_dir"/src/*.c "$usockets_dir"/src/eventing/*.c "$usockets_dir"/src/crypto/*.c) &&
    g++ -O3 -std=c++20 -DLIBUS_NO_SSL -I"$uws_dir/src" -I"$usockets_dir/src" \
      -o "$bin/uws_echo" "$here/peers/uws_echo.cpp" "$bin"/uws-obj/*.o -lz
}
