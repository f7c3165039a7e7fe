#!/usr/bin/env bash
# Interop: Node's `ws` client against `duplex echo` (text, binary, 4 MiB,
# pipelining, ping/pong, close codes, query strings; with and without
# permessage-deflate offered, and against a server with compression on).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
client="$here/node_echo_client.mjs"
start_echo
run_helper "node ws client" node "$client" "$PORT"
# Several event loops sharing the port (SO_REUSEPORT).
start_echo --threads 3
run_helper "node ws client, --threads 3" node "$client" "$PORT" "threads=3"
# permessage-deflate: per-message contexts, then context takeover.
start_echo --deflate
DX_EXPECT_DEFLATE=1 run_helper "node ws client, --deflate" node "$client" "$PORT" "deflate"
start_echo --deflate --deflate-mode takeover
DX_EXPECT_DEFLATE=1 run_helper "node ws client, --deflate-mode takeover" node "$client" "$PORT" "deflate takeover"
finish
