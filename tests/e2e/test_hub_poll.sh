#!/usr/bin/env bash
# duplex serve over plain HTTP: long-polling (GET /poll) and one-shot
# requests (POST /http/request), with positions, tokens and refusals.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
secret="poll-secret-$RANDOM-0123456789abc"
start_serve --api-key pollkey
plain=$PORT
start_serve --token-secret "$secret"
run_helper "poll client" node "$DX_SOURCE_DIR/tests/interop/hub_poll.mjs" "$plain" pollkey "$PORT" "$secret"
finish
