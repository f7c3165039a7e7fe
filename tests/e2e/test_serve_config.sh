#!/usr/bin/env bash
# duplex serve --config / --check-config: the example file checks and prints
# with secrets masked; unknown keys, wrong types, bad JSON and bad rules are
# errors with their line:column; a rule from the file is enforced; a flag
# overrides the file; SIGHUP reloads the rules without dropping connections;
# --log-format json writes one JSON object per line.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws

# check NAME FILE [FLAGS...]: duplex serve --check-config FILE FLAGS (bounded).
check_config() {
  local name=$1 file=$2
  shift 2
  capture "$name" /dev/null 10 "$DUPLEX" serve --check-config "$file" "$@"
}

# ---- the example file ----
example="$DX_SOURCE_DIR/docs/duplex.example.json"
check_config example "$example"
if [[ $RC == 0 ]] && "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$OUT"; then
  pass "--check-config docs/duplex.example.json: exit 0, the effective configuration as JSON"
else
  check_fail "--check-config on the example: exit $RC: $(head -c 2000 "$ERR")"
fi
secret=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token-secret"])' "$example")
apikey=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api-key"])' "$example")
if "$PY" - "$OUT" <<'EOF' && ! grep -qF -e "$secret" -e "$apikey" "$OUT" "$ERR"; then
import json, sys
c = json.load(open(sys.argv[1]))
assert c["token-secret"] == "********" and c["api-key"] == "********", c
assert c["rules"][0] == {"pattern": "ticker/*", "publish": "api", "presence": "off", "history": 10}, c["rules"]
assert c["port"] == 8080 and c["origin"] == ["https://example.com", "https://*.example.com"], c
EOF
  pass "the printed configuration masks token-secret and api-key, and has the rules as objects"
else
  check_fail "masked secrets: $(head -c 3000 "$OUT")"
fi
# Every flag of duplex serve --help is a key of the example (or a //comment
# of one: token-key and the TLS files; "rules" for --rule).
missing=()
for flag in $("$DUPLEX" serve --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z-]+' | grep -oE -- '--[a-z-]+' | sed 's/^--//'); do
  case $flag in help | config | check-config) continue ;; esac
  [[ $flag == rule ]] && flag=rules
  grep -qE "^ *\"(//)?$flag\":" "$example" || missing+=("$flag")
done
((${#missing[@]} == 0)) && pass "the example has a key for every flag of duplex serve --help" ||
  check_fail "the example lacks: ${missing[*]}"

# ---- errors: key, line and column; exit 2 ----
cat >"$DX_TMP/unknown.json" <<'EOF'
{
  "port": 8080,
  "colour": "red",
  "history_size": 5
}
EOF
check_config unknown "$DX_TMP/unknown.json"
[[ $RC == 2 && ! -s $OUT ]] && grep -qF "$DX_TMP/unknown.json:3:3: unknown key 'colour'" "$ERR" &&
  pass "an unknown key is an error naming the key and its line:column, exit 2" ||
  check_fail "unknown key: exit $RC: $(cat "$ERR")"
grep -qF "unknown.json:4:3: unknown key 'history_size' (did you mean 'history-size'?)" "$ERR" &&
  pass "every unknown key is reported, with a suggestion for underscores" ||
  check_fail "second unknown key: $(cat "$ERR")"

cat >"$DX_TMP/types.json" <<'EOF'
{
  "history-size": [100],
  "demo": "yes",
  "origin": "https://ok.example",
  "api-key": 12345
}
EOF
check_config types "$DX_TMP/types.json"
[[ $RC == 2 ]] && grep -qF 'types.json:2:19: "history-size" should be a number or a string' "$ERR" &&
  grep -qF 'types.json:3:11: "demo" should be true or false, not a string' "$ERR" &&
  grep -qF 'types.json:5:14: "api-key" should be a string, not a number' "$ERR" && ! grep -q 12345 "$ERR" &&
  pass "wrong types are errors with the value's line:column (and a secret's value is not shown)" ||
  check_fail "wrong types: exit $RC: $(cat "$ERR")"

printf '{\n  "port": 8080,\n  "token-secret": hunter2hunter2hunter2\n}\n' >"$DX_TMP/syntax.json"
check_config syntax "$DX_TMP/syntax.json"
[[ $RC == 2 ]] && grep -qE 'syntax\.json:3:[0-9]+: bad JSON' "$ERR" && ! grep -q hunter2 "$ERR" &&
  pass "bad JSON: an error with its line:column that does not quote the text (it may be a secret)" ||
  check_fail "bad JSON: exit $RC: $(cat "$ERR")"

cat >"$DX_TMP/rule.json" <<'EOF'
{
  "rules": [
    {"pattern": "ticker/*", "publish": "api"},
    {"pattern": "chat:*", "publish": "sometimes"},
    {"pattern": "x:*", "colour": "red"},
    {"publish": "api"}
  ]
}
EOF
check_config rule "$DX_TMP/rule.json"
[[ $RC == 2 ]] && grep -qF "rule.json:4:38: rules[1]: publish=sometimes: use api or clients" "$ERR" &&
  grep -qF "rule.json:5:24: rules[2]: unknown rule key 'colour'" "$ERR" &&
  grep -qF 'rule.json:6:5: rules[3] needs a "pattern"' "$ERR" &&
  pass "bad rules: each error names the rule, the key and its line:column" ||
  check_fail "bad rules: exit $RC: $(cat "$ERR")"

printf '{"port": "eighty", "threads": 0}\n' >"$DX_TMP/values.json"
check_config values "$DX_TMP/values.json"
[[ $RC == 2 ]] && grep -qF "values.json:1:10: port: bad port 'eighty'" "$ERR" &&
  grep -qF "values.json:1:31: threads: bad thread count '0'" "$ERR" &&
  pass "bad values are checked by the flags' own parsers, with the key's position" ||
  check_fail "bad values: exit $RC: $(cat "$ERR")"

check_config missing "$DX_TMP/nope.json"
[[ $RC == 2 ]] && grep -qF "nope.json: cannot read the configuration file" "$ERR" &&
  pass "a missing file is an error, exit 2" || check_fail "missing file: exit $RC: $(cat "$ERR")"

# ---- flags override the file ----
cat >"$DX_TMP/serve.json" <<'EOF'
{
  "host": "0.0.0.0",
  "port": 18999,
  "history-size": 5,
  "origin": ["https://file.example"],
  "api-key": "file-api-key-0123456789",
  "rules": [{"pattern": "ticker/*", "publish": "api"}]
}
EOF
check_config override "$DX_TMP/serve.json" --port 4321 --history-size 7 --origin https://flag.example
if [[ $RC == 0 ]] && "$PY" - "$OUT" <<'EOF'; then
import json, sys
c = json.load(open(sys.argv[1]))
assert c["port"] == 4321 and c["history-size"] == 7 and c["host"] == "0.0.0.0", c
assert c["origin"] == ["https://flag.example"], c
EOF
  pass "--check-config FILE with flags: the flags override the file's values (a list flag replaces its list)"
else
  check_fail "override: exit $RC: $(cat "$OUT" "$ERR")"
fi

# ---- a server from the file ----
cp "$DX_TMP/serve.json" "$DX_TMP/live.json"
start_serve --config "$DX_TMP/live.json" # start_serve adds --host 127.0.0.1 --port 0
[[ $PORT != 18999 ]] && grep -q 'listening on ws://127\.0\.0\.1:' "$SERVE_LOG" &&
  pass "--host and --port on the command line override the file's" ||
  check_fail "override: listening on $PORT: $(cat "$SERVE_LOG")"
run_helper "config client" node "$DX_SOURCE_DIR/tests/interop/serve_config.mjs" "$PORT" "$SERVE_PID" \
  "$DX_TMP/live.json" "$SERVE_LOG"
grep -qF "file-api-key-0123456789" "$SERVE_LOG" && check_fail "the API key appears in the log" ||
  pass "no secret from the file in the log"

# ---- --log-format json ----
cp "$DX_TMP/serve.json" "$DX_TMP/json.json"
start_serve --config "$DX_TMP/json.json" --log-format json --token-secret "json-log-secret-0123456789"
json_pid=$SERVE_PID json_log=$SERVE_LOG
kill -HUP "$json_pid"
for ((i = 0; i < 100; i++)); do grep -q 'rules reloaded' "$json_log" && break; sleep 0.05; done
kill -TERM "$json_pid"
wait_gone "$json_pid" 10 || check_fail "the --log-format json server did not stop within 10 s"
reap_server "$json_pid" || check_fail "the --log-format json server exited with status $?"
if "$PY" - "$json_log" <<'EOF'; then
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) >= 5, lines
for l in lines:
    o = json.loads(l)
    assert set(o) == {"time", "level", "msg"}, o
    assert o["level"] in ("error", "warn", "info", "debug") and o["time"].endswith("Z"), o
msgs = [json.loads(l)["msg"] for l in lines]
assert any("listening on ws://127.0.0.1:" in m for m in msgs), msgs
assert any(m.startswith("rules reloaded: 1 rule") for m in msgs), msgs
assert any("stopped" in m for m in msgs), msgs
EOF
  pass "--log-format json: every line is a JSON object {time, level, msg}"
else
  check_fail "--log-format json: $(head -c 2000 "$json_log")"
fi
grep -qF -e "json-log-secret" -e "file-api-key" "$json_log" && check_fail "a secret appears in the JSON log" ||
  pass "no secret in the JSON log"

# The man page describes every option of duplex serve (test_man_page checks
# the other commands).
man_text=$(sed 's/\\-/-/g' "$DX_SOURCE_DIR/docs/duplex.1")
missing=()
for opt in $("$DUPLEX" serve --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  grep -qE -- "${opt}([^a-z-]|$)" <<<"$man_text" || missing+=("$opt")
done
((${#missing[@]} == 0)) && pass "duplex.1 has every option of duplex serve" ||
  check_fail "duplex.1 lacks options of duplex serve: ${missing[*]}"

capture badfmt /dev/null 10 "$DUPLEX" serve --log-format xml --port 0
[[ $RC == 2 ]] && grep -qF "bad log format 'xml' (text or json)" "$ERR" &&
  pass "--log-format takes text or json" || check_fail "--log-format xml: exit $RC: $(cat "$ERR")"
finish
