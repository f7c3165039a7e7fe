#!/usr/bin/env bash
# The sessions of the HTTP transports (long-polling, SSE + POST): presence
# of a long-poller across its polls and after --session-idle, rate limits
# per session, unknown ids (410), many concurrent pollers on --threads 2,
# a session bound to its token's user (tests/interop/hub_session.mjs).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
key=sessionkey-$RANDOM
secret="session-secret-$RANDOM-0123456789abc"
start_serve --api-key "$key" --session-idle 1s --publish-rate 5 --subscribe-rate 2
plain=$PORT
start_serve --api-key "$key" --session-idle 20s --threads 2
threads=$PORT
start_serve --token-secret "$secret" --session-idle 1s --max-connections-per-user 2
run_helper "session client" node "$DX_SOURCE_DIR/tests/interop/hub_session.mjs" "$plain" "$key" "$threads" "$PORT" "$secret"
finish
