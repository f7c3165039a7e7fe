#!/usr/bin/env bash
# Interop: permessage-deflate (RFC 7692) with real peers, both ways.
#   - `duplex echo --deflate` (shared and takeover modes) against headless
#     Chromium, Node `ws` (a matrix of offers: window bits, no context
#     takeover, levels) and Python `websockets` (default and custom offers);
#   - `duplex connect --deflate` (both modes) against Node `ws` servers with
#     perMessageDeflate (context takeover, small windows, no takeover) and
#     against Python's websockets.serve with its default compression
#     (server_max_window_bits=12, client_max_window_bits=12).
# Messages include repeats farther apart than the smaller windows, so a
# compressor that ignores a negotiated window size is caught, and the peers
# count bytes on the wire, so compression that is negotiated but not used is
# caught too.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws playwright-core
"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
chromium=${DX_CHROMIUM:-/usr/bin/chromium}
[[ -x "$chromium" ]] || fail "no Chromium at $chromium: run scripts/deps.sh --test"

# ---- duplex echo --deflate against real clients --------------------------------
for mode in shared takeover; do
  start_echo --deflate --deflate-mode "$mode"
  run_helper "chromium, --deflate-mode $mode" node "$here/deflate_browser.mjs" "$PORT" "chromium $mode"
  run_helper "node ws, --deflate-mode $mode" node "$here/deflate_node_client.mjs" "$PORT" "node $mode"
  run_helper "python websockets, --deflate-mode $mode" "$PY" "$here/deflate_py_client.py" "$PORT" "python $mode"
done
# A server whose own window is small: it must say so (server_max_window_bits).
start_echo --deflate --deflate-mode takeover --deflate-window-bits 10
run_helper "node ws, takeover with --deflate-window-bits 10" node "$here/deflate_node_client.mjs" "$PORT" \
  "node takeover wbits 10"

# ---- duplex connect --deflate against real servers -----------------------------
# The input: lines duplex connect sends as text messages.
input="$DX_TMP/deflate.in"
"$PY" - "$input" <<'EOF'
import os, random, sys
rng = random.Random(7692)
def far(dist, total):
    block = "".join(rng.choice("0123456789abcdef") for _ in range(dist))
    return (block * (total // dist + 1))[:total]
lines = [far(600, 100_000), far(5000, 300_000), far(20000, 400_000)]
same = far(3000, 30_000)
lines += [same, same, same]
lines += [f'{{"type":"update","id":{i},"text":"message number {i} \u2713"}}' for i in range(200)]
lines += ["", "a", "b" * 63, "c" * 64, "d" * 65]
line = "The quick brown fox jumps over the lazy dog \u2014 \u2713 "
lines.append((line * (1_100_000 // len(line)))[:1_000_000])
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
EOF
nlines=$(wc -l <"$input")
payload=$(($(wc -c <"$input") - nlines))

# start_deflate_peer NAME CMD...: sets PEER_PORT and PEER_LOG.
start_deflate_peer() {
  local name=$1 i pid
  shift
  PEER_LOG="$DX_TMP/peer-$name.log"
  : >"$PEER_LOG"
  "$@" >"$PEER_LOG" 2>&1 &
  pid=$!
  DX_SERVER_PIDS+=("$pid")
  DX_SERVER_LOGS+=("$PEER_LOG")
  PEER_PORT=
  for ((i = 0; i < 200; i++)); do
    PEER_PORT=$(grep -m1 -oE '^listening [0-9]+' "$PEER_LOG" | grep -oE '[0-9]+$' || true)
    [[ -n "$PEER_PORT" ]] && break
    proc_gone "$pid" && fail "peer $name exited before listening: $(cat "$PEER_LOG")"
    sleep 0.05
  done
  [[ -n "$PEER_PORT" ]] || fail "peer $name printed no 'listening PORT' within 10 s"
  log "peer $name pid $pid on port $PEER_PORT"
}

# client_run LABEL MODE: duplex connect --deflate --deflate-mode MODE to the
# current peer; checks the echo, the negotiation and the bytes on the wire.
client_run() {
  local label=$1 mode=$2 out="$DX_TMP/c.$RANDOM.out" err rc=0 n0 accept close wire
  err="$out.err"
  n0=$(grep -c '^close ' "$PEER_LOG")
  timeout -k 5 60 "$DUPLEX" connect --deflate --deflate-mode "$mode" "ws://127.0.0.1:$PEER_PORT/" \
    -n "$nlines" <"$input" >"$out" 2>"$err" || rc=$?
  sanitizer_report_in "$err" && check_fail "$label: sanitizer report: $(head -c 3000 "$err")"
  if [[ $rc == 0 ]] && cmp -s "$out" "$input"; then
    pass "$label: $nlines messages round-trip"
  else
    check_fail "$label: exit $rc, $(wc -l <"$out") of $nlines lines back$(cmp "$out" "$input" 2>&1 | head -n 1 | sed 's/^/, /'); stderr: $(head -c 600 "$err"); peer: $(grep -E '^(error|close)' "$PEER_LOG" | tail -n 2)"
    return
  fi
  accept=$(grep '^accept ' "$PEER_LOG" | tail -n 1)
  [[ $accept == *permessage-deflate* ]] && pass "$label: negotiated (${accept#accept })" ||
    check_fail "$label: not negotiated: $(grep -E '^(offer|accept)' "$PEER_LOG" | tail -n 2)"
  local i
  for ((i = 0; i < 100; i++)); do
    (($(grep -c '^close ' "$PEER_LOG") > n0)) && break
    sleep 0.05
  done
  close=$(grep '^close ' "$PEER_LOG" | tail -n 1)
  wire=$(sed -nE 's/.* wire=([0-9]+).*/\1/p' <<<"$close")
  if [[ $close != *"code=1000 messages=$nlines payload=$payload "* ]]; then
    check_fail "$label: the peer logged '$close' (want code=1000 messages=$nlines payload=$payload)"
  elif ((wire * 2 > payload)); then
    check_fail "$label: our client did not compress: $wire bytes on the wire for $payload of payload"
  else
    pass "$label: our client compressed ($wire bytes on the wire for $payload)"
  fi
}

node_configs=(
  '{"threshold":0}'
  '{"threshold":0,"serverMaxWindowBits":10,"clientMaxWindowBits":10}'
  '{"threshold":0,"serverNoContextTakeover":true,"clientNoContextTakeover":true}'
  '{"threshold":0,"serverMaxWindowBits":9,"clientMaxWindowBits":9,"zlibDeflateOptions":{"level":9}}'
)
k=0
for cfg in "${node_configs[@]}"; do
  k=$((k + 1))
  start_deflate_peer "node$k" node "$here/deflate_peer_node.mjs" "$cfg"
  for mode in shared takeover; do
    client_run "duplex connect --deflate-mode $mode vs node ws $cfg" "$mode"
  done
done
start_deflate_peer python "$PY" "$here/deflate_peer_python.py"
for mode in shared takeover; do
  client_run "duplex connect --deflate-mode $mode vs python websockets.serve (default compression)" "$mode"
done
finish
