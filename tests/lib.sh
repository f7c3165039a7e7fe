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
