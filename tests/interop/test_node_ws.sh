#!/usr/bin/env bash
# Interop: Node's `ws` client against `duplex echo` (text, binary, 4 MiB,
# pipelining, ping/pong, close codes, query strings; with and without
# permessage-deflate offered).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
start_echo
run_helper "node ws client" node "$here/node_echo_client.mjs" "$PORT"
# The same against several event loops sharing the port (SO_REUSEPORT).
start_echo --threads 3
run_helper "node ws client, --threads 3" node "$here/node_echo_client.mjs" "$PORT" "threads=3"
finish
