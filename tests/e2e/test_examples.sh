#!/usr/bin/env bash
# The examples build and work: examples/echo_server answers a real client
# (Node `ws`) and exits 0 on SIGTERM after closing it with 1001;
# examples/ticker_server's worker thread greets each client by id and
# broadcasts ticks through the thread-safe posts.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws

# start_example NAME: run examples/NAME on a free port in the background;
# sets pid, log_file and PORT (from its "listening on ws://..." line).
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
    PORT=$(grep -m1 -oE 'ws://127\.0\.0\.1:[0-9]+' "$log_file" | grep -oE '[0-9]+$' || true)
    [[ -n "$PORT" ]] && break
    sleep 0.05
  done
  [[ -n "$PORT" ]] || fail "$1 printed no listening line"
}

start_example echo_server
pass "echo_server listens on port $PORT"

# A client that echoes once, then stays open until the server closes it.
out="$DX_TMP/client.out"
(cd "$DX_SOURCE_DIR/tests/interop" && node -e '
const WebSocket = require("ws");
const ws = new WebSocket(`ws://127.0.0.1:${process.argv[1]}/demo`);
ws.on("open", () => ws.send("hello from node"));
ws.on("message", (d) => { console.log("echo " + d); console.log("ready"); });
ws.on("close", (code) => { console.log("closed " + code); process.exit(0); });
ws.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
' "$PORT" >"$out" 2>&1) &
client=$!
wait_file_line() { for _ in $(seq 200); do grep -q "$1" "$out" && return 0; sleep 0.05; done; return 1; }
wait_file_line ready && grep -q "echo hello from node" "$out" && pass "message echoed" ||
  check_fail "no echo: $(cat "$out")"
grep -q "open .* /demo" "$log_file" && pass "on_open saw the path" || check_fail "no open line"

kill -TERM "$pid"
wait "$client" || true
grep -q "closed 1001" "$out" && pass "client got close 1001 on shutdown" ||
  check_fail "client: $(cat "$out")"
rc=0
wait "$pid" || rc=$?
DX_SERVER_PIDS=()
[[ $rc == 0 ]] && pass "echo_server exited 0" || check_fail "echo_server exited $rc"

# --- ticker_server: a worker thread posting to the loop ---------------------
start_example ticker_server
# Two clients at once: each is welcomed by its own id, both get the ticks.
out="$DX_TMP/ticker.out"
(cd "$DX_SOURCE_DIR/tests/interop" && node -e '
const WebSocket = require("ws");
let done = 0;
for (const name of ["a", "b"]) {
  const ws = new WebSocket(`ws://127.0.0.1:${process.argv[1]}/`);
  let ticks = 0, welcome = null, last = 0, ordered = true;
  ws.on("message", (d) => {
    const s = d.toString();
    if (s.startsWith("welcome ")) { welcome = s; return; }
    const n = Number(s.split(" ")[1]);
    if (n <= last) ordered = false;
    last = n;
    if (++ticks == 5) {
      console.log(`${name} ${welcome} ticks ${ticks} ordered ${ordered}`);
      ws.close(1000);
      if (++done == 2) process.exit(0);
    }
  });
  ws.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
}
setTimeout(() => { console.log("timeout"); process.exit(1); }, 10000);
' "$PORT" >"$out" 2>&1) || true
welcomes=$(grep -oE 'welcome [0-9]+' "$out" | sort -u | wc -l)
[[ $(grep -c 'ticks 5 ordered true' "$out") == 2 && $welcomes == 2 ]] &&
  pass "ticker: both clients welcomed by their own id and got 5 ordered ticks" ||
  check_fail "ticker client: $(cat "$out")"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
DX_SERVER_PIDS=()
[[ $rc == 0 ]] && pass "ticker_server exited 0 after stopping its worker" ||
  check_fail "ticker_server exited $rc: $(tail -5 "$log_file")"
finish
