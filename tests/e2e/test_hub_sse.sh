#!/usr/bin/env bash
# duplex serve over Server-Sent Events (GET /sse): same publications as
# WebSocket, positions in event ids, Last-Event-ID resume, refusals, tokens.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
secret="sse-secret-$RANDOM-0123456789abcd"
start_serve --api-key ssekey
plain=$PORT
start_serve --token-secret "$secret"
run_helper "sse client" node "$DX_SOURCE_DIR/tests/interop/hub_sse.mjs" "$plain" ssekey "$PORT" "$secret"
finish
