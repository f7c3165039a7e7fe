#!/usr/bin/env bash
# The examples build and work: examples/echo_server answers a real client
# (Node `ws`) and exits 0 on SIGTERM after closing it with 1001;
# examples/ticker_server's worker thread greets each client by id and
# broadcasts ticks through the thread-safe posts.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws


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

# examples/hub_server: the embedded hub. Its worker thread publishes on
# "clock" with dx_hub_publish; the authorisation hook lets clients publish
# only under "chat:".
start_example hub_server
pass "hub_server listens on port $PORT"
out="$DX_TMP/hub.out"
(cd "$DX_SOURCE_DIR/tests/interop" && node -e '
const WebSocket = require("ws");
const ws = new WebSocket(`ws://127.0.0.1:${process.argv[1]}/ws`, "duplex.v1");
const seen = { ticks: [], replies: {} };
ws.on("open", () => {
  ws.send(JSON.stringify({ id: 1, op: "subscribe", topic: "clock" }));
  ws.send(JSON.stringify({ id: 2, op: "publish", topic: "clock", data: "spoof" }));
  ws.send(JSON.stringify({ id: 3, op: "subscribe", topic: "chat:x" }));
  ws.send(JSON.stringify({ id: 4, op: "publish", topic: "chat:x", data: "hi" }));
});
ws.on("message", (d) => {
  const m = JSON.parse(d);
  if (m.type === "reply") seen.replies[m.id] = m.ok ? "ok" : m.error.code;
  if (m.type === "message" && m.topic === "clock") seen.ticks.push(m.data.tick);
  if (m.type === "message" && m.topic === "chat:x") seen.chat = m.data;
  if (seen.ticks.length >= 2 && seen.chat) { console.log(JSON.stringify(seen)); ws.close(1000); process.exit(0); }
});
ws.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
setTimeout(() => { console.log("timeout " + JSON.stringify(seen)); process.exit(1); }, 10000);
' "$PORT" >"$out" 2>&1) || true
grep -q '"replies":{"1":"ok","2":"forbidden","3":"ok","4":"ok"}' "$out" &&
  pass "hub_server: the authorisation hook refuses a client publish on clock, allows chat:" ||
  check_fail "hub_server replies: $(cat "$out")"
grep -qE '"ticks":\[[0-9]+,[0-9]+' "$out" && grep -q '"chat":"hi"' "$out" &&
  pass "hub_server: publishes from the worker thread and from a client arrive" ||
  check_fail "hub_server deliveries: $(cat "$out")"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
DX_SERVER_PIDS=()
[[ $rc == 0 ]] && pass "hub_server exited 0" || check_fail "hub_server exited $rc: $(tail -5 "$log_file")"
finish
