#!/usr/bin/env bash
# The duplex command line: --help and --version exit 0 with their text on
# stdout; a bad flag, for any command, exits 2 with a one-line error, the
# command's usage line and a pointer to --help on stderr (nothing on
# stdout); --log-level takes error, warn, info, debug; and --max-connections
# counts connections across all --threads loops.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
OUT="$DX_TMP/out"
ERR="$DX_TMP/err"

# dx ARGS...: run duplex; sets RC, output in $OUT and $ERR.
dx() {
  RC=0
  "$DUPLEX" "$@" </dev/null >"$OUT" 2>"$ERR" || RC=$?
}

# ok_help NAME FIRST_LINE ARGS...: exit 0, stdout starts with FIRST_LINE,
# stderr empty.
ok_help() {
  local name=$1 first=$2
  shift 2
  dx "$@"
  if [[ $RC == 0 && "$(head -n1 "$OUT")" == "$first" && ! -s "$ERR" ]]; then
    pass "$name"
  else
    check_fail "$name: exit $RC, stdout '$(head -n1 "$OUT")', stderr '$(head -c 300 "$ERR")'"
  fi
}

# usage_error NAME ERROR_LINE USAGE_LINE CMD ARGS...: exit 2, nothing on
# stdout, stderr = the error line, the usage line, then the --help hint.
usage_error() {
  local name=$1 error=$2 usage=$3 cmd=$4
  shift 4
  dx "$@"
  local l1 l2 l3 n
  l1=$(sed -n 1p "$ERR")
  l2=$(sed -n 2p "$ERR")
  l3=$(sed -n 3p "$ERR")
  n=$(wc -l <"$ERR")
  if [[ $RC == 2 && ! -s "$OUT" && "$l1" == "$error" && "$l2" == "$usage" && $n == 3 &&
    "$l3" == *"--help"* ]]; then
    pass "$name: exit 2, one-line error and the usage"
  else
    check_fail "$name: exit $RC, stdout '$(head -c 200 "$OUT")', stderr: $(cat "$ERR")"
  fi
  [[ $cmd == "" || "$l3" == "Try 'duplex $cmd --help' for the options." ]] ||
    check_fail "$name: hint '$l3'"
}

# ---- the top level ----
ok_help "duplex --help" "usage: duplex COMMAND [OPTIONS]" --help
ok_help "duplex -h" "usage: duplex COMMAND [OPTIONS]" -h
for c in echo connect bench; do
  grep -qE "^  $c " "$OUT" && pass "--help lists $c" || check_fail "--help does not list $c"
done
dx --version
if [[ $RC == 0 && $(wc -l <"$OUT") == 1 ]] && grep -qE '^duplex [0-9]+\.[0-9]+\.[0-9]+$' "$OUT" && [[ ! -s "$ERR" ]]; then
  pass "duplex --version: one line, exit 0"
else
  check_fail "--version: exit $RC, '$(cat "$OUT")'"
fi
dx -V
[[ $RC == 0 && "$(cat "$OUT")" == "$(cat "$DX_TMP/out")" ]] && pass "duplex -V" || check_fail "-V: exit $RC"
dx
[[ $RC == 2 && ! -s "$OUT" ]] && grep -q '^usage: duplex COMMAND' "$ERR" && pass "no command: usage, exit 2" ||
  check_fail "no command: exit $RC"
usage_error "unknown command" "duplex: unknown command 'nope'" "usage: duplex COMMAND [OPTIONS]" "" nope

# ---- duplex echo ----
ok_help "duplex echo --help" "usage: duplex echo [OPTIONS]" echo --help
for opt in --port --threads --max-connections --max-message --ping-interval --pong-timeout --log-level \
  --static --deflate --tls-cert; do
  grep -q -- "$opt" "$OUT" || check_fail "echo --help does not mention $opt"
done
pass "echo --help describes the server flags"
grep -q 'default port is 9001' "$OUT" && ! grep -q 'shown above' "$OUT" &&
  pass "echo --help gives the default port" || check_fail "echo --help does not say the default port"
ok_help "duplex echo -h" "usage: duplex echo [OPTIONS]" echo -h

EU="usage: duplex echo [OPTIONS]"
usage_error "echo --bogus" "duplex echo: unknown option '--bogus'" "$EU" echo echo --bogus
usage_error "echo -x" "duplex echo: unknown option '-x'" "$EU" echo echo -x
usage_error "echo --port without a value" "duplex echo: option '--port' needs a value" "$EU" echo echo --port
usage_error "echo --port 70000" "duplex echo: bad port '70000'" "$EU" echo echo --port 70000
usage_error "echo --threads 0" "duplex echo: bad thread count '0' (1-256)" "$EU" echo echo --threads 0
usage_error "echo --max-connections 0" "duplex echo: bad count '0' for --max-connections" "$EU" echo \
  echo --max-connections 0
usage_error "echo --max-message 1X" "duplex echo: bad size '1X' for --max-message" "$EU" echo echo --max-message 1X
usage_error "echo --pong-timeout soon" "duplex echo: bad duration 'soon' (try 500ms, 30s, 5m or off)" "$EU" echo \
  echo --pong-timeout soon
usage_error "echo with an argument" "duplex echo: unexpected argument 'extra'" "$EU" echo echo extra
usage_error "echo --tls-key without --tls-cert" \
  "duplex echo: --tls-key, --tls-ca and --tls-port need --tls-cert" "$EU" echo echo --tls-key k.pem

# --log-level: the four levels in any case; anything else is a usage error.
for lvl in error warn info debug DEBUG Warn; do
  dx echo --log-level "$lvl" --help
  [[ $RC == 0 ]] || check_fail "--log-level $lvl refused: $(cat "$ERR")"
done
pass "--log-level takes error, warn, info, debug (any case)"
usage_error "echo --log-level loud" "duplex echo: bad log level 'loud' (error, warn, info, debug)" "$EU" echo \
  echo --log-level loud
usage_error "echo --log-level ''" "duplex echo: bad log level '' (error, warn, info, debug)" "$EU" echo \
  echo --log-level ''
usage_error "echo --log-level without a value" "duplex echo: option '--log-level' needs a value" "$EU" echo \
  echo --log-level

# The level takes effect: at error nothing is logged through a whole run;
# at debug, debug lines appear.
"$DUPLEX" echo --host 127.0.0.1 --port 0 --log-level error >"$DX_TMP/quiet.out" 2>"$DX_TMP/quiet.err" &
quiet=$!
sleep 0.5
kill -TERM "$quiet" 2>/dev/null
qrc=0
wait "$quiet" || qrc=$?
[[ $qrc == 0 && ! -s "$DX_TMP/quiet.err" ]] && pass "--log-level error: a run logs nothing, exit 0" ||
  check_fail "--log-level error: exit $qrc, stderr: $(head -c 500 "$DX_TMP/quiet.err")"
start_echo --log-level debug
grep -q ' DEBUG ' "$ECHO_LOG" && pass "--log-level debug: debug lines" || check_fail "--log-level debug: none in $(cat "$ECHO_LOG")"

# ---- every subcommand: bad flags print the usage too ----
usage_error "connect --bogus" "duplex connect: unknown option '--bogus'" "usage: duplex connect [OPTIONS] URL" connect \
  connect --bogus ws://127.0.0.1:1/
usage_error "bench --bogus" "duplex bench: unknown option '--bogus'" "usage: duplex bench [OPTIONS] URL" bench \
  bench --bogus ws://127.0.0.1:1/
usage_error "bench without a URL" "duplex bench: a URL is required" "usage: duplex bench [OPTIONS] URL" bench bench

# ---- --max-connections is for the process, whatever --threads ----
start_echo --threads 2 --max-connections 2
run_helper "threads limit" "$PY" "$here/echo_cli_limits.py" "$PORT"
finish
