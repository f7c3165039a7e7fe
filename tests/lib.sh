# shellcheck shell=bash
# Shared helpers for the interop and end-to-end test scripts.
#
#   source "$(dirname "$0")/../lib.sh"
#   start_echo --max-message 1K        # sets PORT and ECHO_PID (killed at exit)
#   start_serve --history-size 5       # duplex serve: PORT, SERVE_PID, SERVE_LOG
#   run_helper "node client" node "$DX_SOURCE_DIR/tests/interop/x.mjs" "$PORT"
#   finish                             # prints "N passed, M failed", exits
#
# Environment (set by ctest): DX_BUILD_DIR (the cmake build directory, whose
# `duplex` is the binary under test) and DX_SOURCE_DIR (the repository root).
# DX_ECHO_CMD, if set, replaces "$DX_BUILD_DIR/duplex echo" (a development aid,
# e.g. DX_ECHO_CMD="node tests/interop/stand_in_echo.mjs").
#
# Helper programs report one line per check: "ok - NAME" or "not ok - NAME:
# WHY"; run_helper counts them.

set -u -o pipefail

DX_SOURCE_DIR=${DX_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DX_BUILD_DIR=${DX_BUILD_DIR:-$DX_SOURCE_DIR/build}
DUPLEX=${DUPLEX:-$DX_BUILD_DIR/duplex}
# Debian's python3 has python3-websockets; a python3 earlier on PATH may not.
# shellcheck disable=SC2034 # used by the test scripts
PY=${DX_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

DX_TEST_NAME=$(basename "${0%.sh}")
DX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dx-${DX_TEST_NAME}.XXXXXX")
export DX_TMP

DX_PASSED=0
DX_FAILED=0
DX_SERVER_PIDS=()
DX_SERVER_LOGS=()
DX_SERVER_SEQ=0
DX_REAPED=() # servers a test waited for itself (see reap_server)

log() { printf '[%s] %s\n' "$DX_TEST_NAME" "$*" >&2; }

# Stop the test now: print why, and let the EXIT trap clean up.
fail() {
  printf '[%s] FAIL: %s\n' "$DX_TEST_NAME" "$*" >&2
  DX_FAILED=$((DX_FAILED + 1))
  printf '%d passed, %d failed\n' "$DX_PASSED" "$DX_FAILED"
  exit 1
}

pass() {
  DX_PASSED=$((DX_PASSED + 1))
  printf 'ok - %s\n' "$*"
}

check_fail() {
  DX_FAILED=$((DX_FAILED + 1))
  printf 'not ok - %s\n' "$*"
}

# Dump the tail of every server log (for a failing test's output).
dump_server_logs() {
  local f
  for f in "${DX_SERVER_LOGS[@]+"${DX_SERVER_LOGS[@]}"}"; do
    [[ -s "$f" ]] || continue
    printf -- '--- %s (last 40 lines) ---\n' "$(basename "$f")" >&2
    tail -n 40 "$f" >&2
  done
}

# Sanitizer reports in a server log are failures even if every check passed.
sanitizer_report_in() {
  grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)' "$1" 2>/dev/null
}

# Is the process gone (exited, possibly a zombie not yet waited for)?
proc_gone() {
  local st
  [[ -r /proc/$1/stat ]] || return 0
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z "$st" || "$st" == Z || "$st" == X ]]
}

# Microseconds since the epoch.
now_us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }

# wait_gone PID SECONDS: poll until the process exits; 0 if it did within
# SECONDS of wall-clock time. Sets WAITED_MS.
wait_gone() {
  local pid=$1 t0 deadline
  t0=$(now_us)
  deadline=$((t0 + $2 * 1000000))
  while ! proc_gone "$pid"; do
    if (($(now_us) >= deadline)); then
      WAITED_MS=$((($(now_us) - t0) / 1000))
      return 1
    fi
    sleep 0.02
  done
  # shellcheck disable=SC2034 # read by callers
  WAITED_MS=$((($(now_us) - t0) / 1000))
  return 0
}

# Stop one server: SIGTERM, up to 10 s, then SIGKILL. Returns its exit status.
stop_server() {
  local pid=$1 rc=0
  if ! proc_gone "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
      log "server $pid ignored SIGTERM for 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

dx_cleanup() {
  local rc=$? pid f bad=0
  trap - EXIT
  # Helpers started in the background by the test itself.
  for pid in $(jobs -p); do
    local is_server=0 s
    for s in "${DX_SERVER_PIDS[@]+"${DX_SERVER_PIDS[@]}"}"; do [[ $s == "$pid" ]] && is_server=1; done
    ((is_server)) || kill -KILL "$pid" 2>/dev/null || true
  done
  local src
  for pid in "${DX_SERVER_PIDS[@]+"${DX_SERVER_PIDS[@]}"}"; do
    [[ " ${DX_REAPED[*]} " == *" $pid "* ]] && continue
    if proc_gone "$pid"; then
      # Servers are stopped here, so one that is already gone died during
      # the test: a crash (or someone killed it).
      src=0
      wait "$pid" 2>/dev/null || src=$?
      if ((src > 128)); then
        printf '[%s] FAIL: server %s died during the test (killed by signal %d)\n' "$DX_TEST_NAME" "$pid" \
          "$((src - 128))" >&2
      else
        printf '[%s] FAIL: server %s exited during the test with status %d\n' "$DX_TEST_NAME" "$pid" "$src" >&2
      fi
      bad=1
      continue
    fi
    stop_server "$pid" || true
  done
  for f in "${DX_SERVER_LOGS[@]+"${DX_SERVER_LOGS[@]}"}"; do
    if sanitizer_report_in "$f"; then
      printf '[%s] FAIL: sanitizer report in server log %s:\n' "$DX_TEST_NAME" "$(basename "$f")" >&2
      grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -n 60 >&2
      bad=1
    fi
  done
  if ((rc != 0 || bad)); then
    dump_server_logs
    [[ -n "${DX_KEEP_TMP:-}" ]] && log "kept $DX_TMP"
  fi
  [[ -n "${DX_KEEP_TMP:-}" ]] || rm -rf "$DX_TMP"
  if ((bad && rc == 0)); then
    printf '%d passed, %d failed (server crashed or reported a sanitizer error)\n' "$DX_PASSED" "$((DX_FAILED + 1))"
    rc=1
  fi
  exit "$rc"
}
trap dx_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_echo [ARGS...]: start "duplex echo --host 127.0.0.1 --port 0 ARGS" and
# wait (up to 10 s) for "listening on ws://127.0.0.1:PORT" on its stderr.
# Sets and exports PORT, ECHO_PID and ECHO_LOG. Can be called more than once;
# every server started is stopped at exit.
# shellcheck disable=SC2120 # arguments are optional
start_echo() {
  local cmd
  if [[ -n "${DX_ECHO_CMD:-}" ]]; then
    # shellcheck disable=SC2206
    cmd=($DX_ECHO_CMD)
  else
    cmd=("$DUPLEX" echo)
  fi
  launch_server "${#cmd[@]}" "${cmd[@]}" "$@"
  ECHO_PID=$DX_LAUNCHED_PID
  ECHO_LOG=$DX_LAUNCHED_LOG
  export ECHO_PID ECHO_LOG
}

# start_serve [ARGS...]: as start_echo, for "duplex serve" (the pub/sub hub);
# sets and exports PORT, SERVE_PID and SERVE_LOG. A later --port in ARGS
# wins over --port 0 (to restart a server on the port it had). Environment
# given on the call (DUPLEX_API_KEY=K start_serve) reaches the server.
# DX_SERVE_CMD, if set, replaces "$DX_BUILD_DIR/duplex serve".
# shellcheck disable=SC2120 # arguments are optional
start_serve() {
  local cmd
  if [[ -n "${DX_SERVE_CMD:-}" ]]; then
    # shellcheck disable=SC2206
    cmd=($DX_SERVE_CMD)
  else
    cmd=("$DUPLEX" serve)
  fi
  launch_server "${#cmd[@]}" "${cmd[@]}" "$@"
  SERVE_PID=$DX_LAUNCHED_PID
  SERVE_LOG=$DX_LAUNCHED_LOG
  export SERVE_PID SERVE_LOG
}

# launch_server N CMD... ARGS...: start "CMD --host 127.0.0.1 --port 0 ARGS"
# (the first N words are CMD) in the background, register it for the checks
# and the cleanup at exit, and wait up to 10 s for "listening on
# ws://127.0.0.1:PORT" on its stderr. Sets PORT (exported), DX_LAUNCHED_PID
# and DX_LAUNCHED_LOG (its stderr; stdout goes to DX_LAUNCHED_LOG.out).
launch_server() {
  local n=$1
  shift
  local cmd=("${@:1:n}")
  shift "$n"
  if [[ "${cmd[0]}" == "$DUPLEX" && ! -x "$DUPLEX" ]]; then
    fail "no duplex binary at $DUPLEX (build it first; DX_BUILD_DIR=$DX_BUILD_DIR)"
  fi
  DX_SERVER_SEQ=$((DX_SERVER_SEQ + 1))
  local log="$DX_TMP/server.$DX_SERVER_SEQ.log" pid
  : >"$log"
  "${cmd[@]}" --host 127.0.0.1 --port 0 "$@" </dev/null >"$log.out" 2>"$log" &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$log")
  local i line=""
  for ((i = 0; i < 200; i++)); do
    line=$(grep -m1 -oE 'listening on ws://127\.0\.0\.1:[0-9]+' "$log" || true)
    [[ -n "$line" ]] && break
    if proc_gone "$pid"; then
      local rc=0
      reap_server "$pid" || rc=$?
      fail "server '${cmd[*]} --host 127.0.0.1 --port 0 $*' exited with status $rc before listening"
    fi
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "server '${cmd[*]} $*' printed no 'listening on ws://127.0.0.1:PORT' within 10 s"
  PORT=${line##*:}
  DX_LAUNCHED_PID=$pid
  DX_LAUNCHED_LOG=$log
  export PORT
  log "server pid $pid listening on port $PORT (${cmd[*]##*/}; args: ${*:-none})"
}

# reap_server PID: wait for a server the test stopped itself; prints nothing,
# returns its exit status.
reap_server() {
  local rc=0
  wait "$1" 2>/dev/null || rc=$?
  DX_REAPED+=("$1")
  return "$rc"
}

# run_helper LABEL CMD...: run a helper program, show its output, and count
# its "ok"/"not ok" lines. A helper that exits non-zero without reporting a
# failed check counts as one failure.
run_helper() {
  local label=$1
  shift
  local out="$DX_TMP/helper.$RANDOM.out" rc=0
  "$@" >"$out" 2>&1 || rc=$?
  tally_helper "$label" "$rc" "$out"
}

# tally_helper LABEL STATUS OUTPUT_FILE: count a finished helper's checks
# (for helpers run in the background).
tally_helper() {
  local label=$1 rc=$2 out=$3 ok bad
  cat "$out"
  ok=$(grep -cE '^ok( |$)' "$out" || true)
  bad=$(grep -cE '^not ok( |$)' "$out" || true)
  DX_PASSED=$((DX_PASSED + ok))
  DX_FAILED=$((DX_FAILED + bad))
  if ((rc != 0 && bad == 0)); then
    check_fail "$label: helper exited with status $rc without reporting a failed check"
  elif ((rc == 0 && ok == 0)); then
    check_fail "$label: helper reported no checks"
  fi
  return 0
}

# capture NAME INPUT SECONDS CMD...: run CMD with stdin from INPUT under a
# timeout; OUT and ERR name files with its stdout and stderr, RC its exit
# status. A sanitizer report on stderr fails the test.
capture() {
  local name=$1 input=$2 secs=$3
  shift 3
  OUT="$DX_TMP/$name.out"
  ERR="$DX_TMP/$name.err"
  RC=0
  timeout -k 5 "$secs" "$@" <"$input" >"$OUT" 2>"$ERR" || RC=$?
  if sanitizer_report_in "$ERR"; then
    check_fail "$name: sanitizer report from $(basename "$1"): $(head -c 3000 "$ERR")"
  fi
}

# expect NAME STATUS WANT_STDOUT_FILE: the last capture exited STATUS and
# printed exactly the file's bytes.
expect() {
  local name=$1 want_rc=$2 want_out=$3
  if [[ $RC != "$want_rc" ]]; then
    check_fail "$name: exit status $RC, expected $want_rc; stderr: $(head -c 2000 "$ERR")"
  elif ! cmp -s "$OUT" "$want_out"; then
    check_fail "$name: stdout differs: $(head -c 300 "$OUT" | od -c | head -n 5); stderr: $(head -c 1000 "$ERR")"
  else
    pass "$name"
  fi
}

# expect_err NAME REGEX / expect_err_text NAME TEXT: the last capture's
# stderr matches the extended regex / contains the text.
expect_err() {
  if grep -qE -- "$2" "$ERR"; then
    pass "$1"
  else
    check_fail "$1: stderr does not match /$2/: $(head -c 2000 "$ERR")"
  fi
}
expect_err_text() {
  if grep -qF -- "$2" "$ERR"; then
    pass "$1"
  else
    check_fail "$1: stderr lacks '$2': $(head -c 2000 "$ERR")"
  fi
}

# wait_file PATH SECONDS: wait until PATH exists.
wait_file() {
  local t0
  t0=$(now_us)
  until [[ -e "$1" ]]; do
    (($(now_us) - t0 < $2 * 1000000)) || return 1
    sleep 0.02
  done
}

# finish: print the summary line and exit (non-zero if anything failed).
finish() {
  if ((DX_FAILED > 0)); then
    printf '[%s] FAILED\n' "$DX_TEST_NAME" >&2
    printf '%d passed, %d failed\n' "$DX_PASSED" "$DX_FAILED"
    exit 1
  fi
  printf '%d passed, %d failed\n' "$DX_PASSED" "$DX_FAILED"
  exit 0
}

need_node_modules() {
  local m
  for m in "$@"; do
    [[ -d "$DX_SOURCE_DIR/tests/interop/node_modules/$m" ]] ||
      fail "tests/interop/node_modules/$m is missing: run scripts/deps.sh --test"
  done
  command -v node >/dev/null || fail "node is not installed: run scripts/deps.sh --test"
}

# start_example NAME: run examples/NAME on a free port (argument 0) in the
# background; sets pid, log_file and PORT (from the first "ws://127.0.0.1:P"
# or "http://127.0.0.1:P" it prints), within 5 s.
start_example() {
  local bin="$DX_BUILD_DIR/examples/$1"
  [[ -x "$bin" ]] || fail "no $bin: the examples were not built"
  log_file="$DX_TMP/$1.out"
  "$bin" 0 >"$log_file" 2>&1 &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$log_file")
  PORT=""
  for _ in $(seq 100); do
    PORT=$(grep -m1 -oE '(ws|http)://127\.0\.0\.1:[0-9]+' "$log_file" | grep -oE '[0-9]+$' || true)
    [[ -n "$PORT" ]] && break
    sleep 0.05
  done
  [[ -n "$PORT" ]] || fail "$1 printed no listening line"
}

# ---- Redis services (redis-server, sentinel, cluster) on loopback -------------
#
#   start_redis [--password PW] [--tls] [REDIS ARGS...]   sets REDIS_PORT, REDIS_PID, REDIS_URL
#   stop_redis PORT [--term]    SIGKILL (a crash) or SIGTERM; waits until it is gone
#   restart_redis PORT          start it again on the same port with the same arguments
#   start_sentinel [N [--password PW]]   a master, a replica, N (1-3) sentinels (requirepass PW):
#                               SENTINEL_PORTS,
#                               SENTINEL_MASTER_PORT, SENTINEL_REPLICA_PORT, SENTINEL_NAME,
#                               SENTINEL_URL (redis+sentinel://...)
#   start_redis_cluster [--tls] 3 masters, no replicas: CLUSTER_PORTS, CLUSTER_URL (--tls: TLS
#                               only, the cluster bus too; rediss+cluster://...?ca=)
#   rcli PORT ARGS...           redis-cli against a started instance (knows its password, TLS)
#
# Every instance runs in the foreground of a background job, on 127.0.0.1, without persistence
# (--save "" --appendonly no), with its files under $DX_TMP/redis.PORT; each is a server of this
# test (stopped at exit, a death not asked for fails the test). Every wait is bounded (10 s, 20 s
# for a cluster). --tls serves TLS only (--port 0 --tls-port PORT) with tests/tls_certs.sh's
# server.pem (127.0.0.1, localhost); REDIS_TLS_CA is the CA to trust.

declare -A DX_REDIS_ARGS=() DX_REDIS_PID=() DX_REDIS_PASS=() DX_REDIS_TLS=()

need_redis() {
  local c
  for c in redis-server redis-cli "$@"; do
    command -v "$c" >/dev/null || fail "$c is not installed: run scripts/deps.sh --test"
  done
}

# free_port [--bus]: print a TCP port free on 127.0.0.1 (--bus: PORT+10000 too, for a cluster).
free_port() {
  "$PY" - "${1:-}" <<'PYEOF'
import random, socket, sys
bus = sys.argv[1] == "--bus"
for _ in range(200):
    p = random.randint(20000, 50000)
    socks = []
    try:
        for q in ([p, p + 10000] if bus else [p]):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
PYEOF
}

# wait_for SECONDS CMD...: run CMD every 50 ms until it succeeds; 1 if it never did.
wait_for() {
  local secs=$1 t0
  shift
  t0=$(now_us)
  until "$@" >/dev/null 2>&1; do
    (($(now_us) - t0 < secs * 1000000)) || return 1
    sleep 0.05
  done
}

# urlenc TEXT: %-encoded for a URL's userinfo or query value.
urlenc() { "$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

rcli() {
  local port=$1
  shift
  local a=(redis-cli -h 127.0.0.1 -p "$port")
  [[ -n "${DX_REDIS_PASS[$port]:-}" ]] && a+=(-a "${DX_REDIS_PASS[$port]}" --no-auth-warning)
  [[ -n "${DX_REDIS_TLS[$port]:-}" ]] && a+=(--tls --cacert "$REDIS_TLS_CA")
  timeout -k 2 10 "${a[@]}" "$@"
}

# _redis_is PORT PID: the server answering on PORT is process PID (not another test's redis that
# took the port between free_port and our bind).
_redis_is() { rcli "$1" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$2"; }

# _redis_launch PORT ARGS...: run redis-server ARGS in the background, wait for its PONG.
_redis_launch() {
  local port=$1
  shift
  local dir="$DX_TMP/redis.$port" log pid
  mkdir -p "$dir"
  log="$dir/redis.log"
  redis-server "$@" --bind 127.0.0.1 --dir "$dir" --daemonize no --logfile "" </dev/null >>"$log" 2>&1 &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$log")
  DX_REDIS_PID[$port]=$pid
  local t0
  t0=$(now_us)
  until _redis_is "$port" "$pid"; do
    if proc_gone "$pid"; then
      reap_server "$pid" || true
      log "redis-server on port $port exited: $(tail -n 5 "$log")"
      return 1
    fi
    (($(now_us) - t0 < 10000000)) || fail "redis-server pid $pid did not answer on port $port within 10 s"
    sleep 0.05
  done
}

start_redis() {
  need_redis
  local pass="" tls="" args=()
  while (($#)); do
    case $1 in
    --password) pass=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    *) args+=("$1"); shift ;;
    esac
  done
  local try port
  for try in 1 2 3 4 5; do
    port=$(free_port)
    local a=(--save "" --appendonly no --protected-mode no --enable-debug-command local)
    [[ -n "$pass" ]] && a+=(--requirepass "$pass" --masterauth "$pass")
    if [[ -n "$tls" ]]; then
      _redis_certs
      a+=(--port 0 --tls-port "$port" --tls-cert-file "$DX_TMP/redis-certs/server.pem"
        --tls-key-file "$DX_TMP/redis-certs/server.key" --tls-ca-cert-file "$REDIS_TLS_CA"
        --tls-auth-clients no --tls-replication yes)
    else
      a+=(--port "$port")
    fi
    a+=("${args[@]+"${args[@]}"}")
    DX_REDIS_PASS[$port]=$pass
    DX_REDIS_TLS[$port]=$tls
    DX_REDIS_ARGS[$port]=$(printf '%q ' "${a[@]}")
    if _redis_launch "$port" "${a[@]}"; then
      REDIS_PORT=$port
      REDIS_PID=${DX_REDIS_PID[$port]}
      local auth=""
      [[ -n "$pass" ]] && auth=":$(urlenc "$pass")@"
      if [[ -n "$tls" ]]; then
        REDIS_URL="rediss://${auth}127.0.0.1:$port?ca=$REDIS_TLS_CA"
      else
        REDIS_URL="redis://${auth}127.0.0.1:$port"
      fi
      export REDIS_PORT REDIS_PID REDIS_URL
      log "redis-server pid $REDIS_PID on port $port${tls:+ (TLS)}"
      return 0
    fi
  done
  fail "redis-server would not start (5 tries; see $DX_TMP/redis.*/redis.log)"
}

_redis_certs() {
  REDIS_TLS_CA="$DX_TMP/redis-certs/ca.pem"
  export REDIS_TLS_CA
  [[ -f "$REDIS_TLS_CA" ]] && return 0
  # shellcheck source=tls_certs.sh
  source "$DX_SOURCE_DIR/tests/tls_certs.sh"
  make_test_certs "$DX_TMP/redis-certs" || fail "could not make test certificates"
}

stop_redis() {
  local port=$1 sig=KILL pid
  [[ "${2:-}" == --term ]] && sig=TERM
  pid=${DX_REDIS_PID[$port]:-}
  [[ -n "$pid" ]] || fail "stop_redis: no redis started on port $port"
  disown "$pid" 2>/dev/null || true # no "Killed" line from bash
  kill -"$sig" "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || fail "redis-server pid $pid (port $port) still runs 10 s after SIG$sig"
  reap_server "$pid" || true
  DX_REDIS_PID[$port]=""
}

restart_redis() {
  local port=$1 args i
  [[ -n "${DX_REDIS_ARGS[$port]:-}" ]] || fail "restart_redis: no redis was started on port $port"
  eval "args=(${DX_REDIS_ARGS[$port]})"
  # The port can stay busy for a moment after a kill; a few tries.
  for i in 1 2 3 4 5; do
    _redis_launch "$port" "${args[@]}" && return 0
    sleep 0.2
  done
  fail "redis-server would not restart on port $port"
}

start_sentinel() {
  local n=${1:-1} i spass=""
  [[ "${2:-}" == --password ]] && spass=$3
  ((n >= 1 && n <= 3)) || fail "start_sentinel: 1 to 3 sentinels"
  need_redis
  SENTINEL_NAME=mymaster
  start_redis
  SENTINEL_MASTER_PORT=$REDIS_PORT
  start_redis --replicaof 127.0.0.1 "$SENTINEL_MASTER_PORT"
  SENTINEL_REPLICA_PORT=$REDIS_PORT
  wait_for 10 _redis_link_up "$SENTINEL_REPLICA_PORT" ||
    fail "the replica on port $SENTINEL_REPLICA_PORT did not sync with its master within 10 s"
  SENTINEL_PORTS=()
  local quorum=$((n / 2 + 1)) port conf hosts=""
  local try started
  for ((i = 0; i < n; i++)); do
    started=""
    for try in 1 2 3 4 5; do # a free port can be taken before redis binds it: another
      port=$(free_port)
      mkdir -p "$DX_TMP/redis.$port"
      conf="$DX_TMP/redis.$port/sentinel.conf"
      cat >"$conf" <<CONF
port $port
bind 127.0.0.1
protected-mode no
sentinel monitor $SENTINEL_NAME 127.0.0.1 $SENTINEL_MASTER_PORT $quorum
sentinel down-after-milliseconds $SENTINEL_NAME 1000
sentinel failover-timeout $SENTINEL_NAME 5000
sentinel parallel-syncs $SENTINEL_NAME 1
CONF
      if [[ -n "$spass" ]]; then
        printf 'requirepass "%s"\nsentinel sentinel-pass "%s"\n' "$spass" "$spass" >>"$conf"
        DX_REDIS_PASS[$port]=$spass
      fi
      DX_REDIS_ARGS[$port]=$(printf '%q ' "$conf" --sentinel)
      _redis_launch "$port" "$conf" --sentinel && started=1 && break
    done
    [[ -n "$started" ]] || fail "redis-server --sentinel would not start (5 tries)"
    SENTINEL_PORTS+=("$port")
    hosts+="${hosts:+,}127.0.0.1:$port"
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    wait_for 10 _sentinel_ready "$port" "$((n - 1))" ||
      fail "sentinel on port $port did not see the replica and $((n - 1)) other sentinels within 10 s"
  done
  SENTINEL_URL="redis+sentinel://$hosts/$SENTINEL_NAME"
  [[ -n "$spass" ]] && SENTINEL_URL+="?sentinel_password=$(urlenc "$spass")"
  export SENTINEL_NAME SENTINEL_MASTER_PORT SENTINEL_REPLICA_PORT SENTINEL_URL
  log "sentinels on ${SENTINEL_PORTS[*]} watch master $SENTINEL_MASTER_PORT, replica $SENTINEL_REPLICA_PORT"
}

_redis_link_up() { rcli "$1" INFO replication | grep -q '^master_link_status:up'; }

# _sentinel_ready PORT OTHERS: knows the master's replica and OTHERS other sentinels.
_sentinel_ready() {
  local info
  info=$(rcli "$1" SENTINEL master "$SENTINEL_NAME" | paste -sd' ') || return 1
  [[ "$info" =~ num-slaves\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= 1)) || return 1
  [[ "$info" =~ num-other-sentinels\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= $2))
}

# sentinel_master_port SENTINEL_PORT: the port the sentinel names as master now.
sentinel_master_port() {
  rcli "$1" SENTINEL get-master-addr-by-name "$SENTINEL_NAME" | sed -n 2p
}

start_redis_cluster() {
  need_redis
  local i port try hosts=() create_log="$DX_TMP/redis-cluster-create.log" tls="" tls_cli=()
  if [[ "${1:-}" == --tls ]]; then
    tls=1
    _redis_certs
    tls_cli=(--tls --cacert "$REDIS_TLS_CA")
  fi
  CLUSTER_PORTS=()
  for i in 1 2 3; do
    for try in 1 2 3 4 5; do
      port=$(free_port --bus)
      local a=(--save "" --appendonly no --protected-mode no --cluster-enabled yes
        --cluster-config-file "$DX_TMP/redis.$port/nodes.conf" --cluster-node-timeout 2000
        --enable-debug-command local)
      if [[ -n "$tls" ]]; then # TLS for clients and the cluster bus (which wants client certs)
        a+=(--port 0 --tls-port "$port" --tls-cluster yes
          --tls-cert-file "$DX_TMP/redis-certs/server.pem"
          --tls-key-file "$DX_TMP/redis-certs/server.key"
          --tls-client-cert-file "$DX_TMP/redis-certs/client.pem"
          --tls-client-key-file "$DX_TMP/redis-certs/client.key" --tls-ca-cert-file "$REDIS_TLS_CA"
          --tls-auth-clients no)
      else
        a+=(--port "$port")
      fi
      DX_REDIS_TLS[$port]=$tls
      DX_REDIS_ARGS[$port]=$(printf '%q ' "${a[@]}")
      _redis_launch "$port" "${a[@]}" && break
      port=""
    done
    [[ -n "$port" ]] || fail "a cluster node would not start"
    CLUSTER_PORTS+=("$port")
    hosts+=("127.0.0.1:$port")
  done
  timeout -k 2 20 redis-cli "${tls_cli[@]}" --cluster create "${hosts[@]}" --cluster-yes \
    >"$create_log" 2>&1 || fail "redis-cli --cluster create failed: $(tail -n 10 "$create_log")"
  for port in "${CLUSTER_PORTS[@]}"; do
    wait_for 20 _cluster_ok "$port" || fail "cluster node $port not cluster_state:ok within 20 s"
  done
  CLUSTER_URL="redis${tls:+s}+cluster://$(
    IFS=,
    echo "${hosts[*]}"
  )"
  [[ -n "$tls" ]] && CLUSTER_URL+="?ca=$REDIS_TLS_CA"
  export CLUSTER_URL
  log "redis cluster on ${CLUSTER_PORTS[*]}"
}

_cluster_ok() { rcli "$1" CLUSTER INFO | grep -q '^cluster_state:ok'; }
