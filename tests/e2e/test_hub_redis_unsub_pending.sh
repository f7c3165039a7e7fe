#!/usr/bin/env bash
# An unsubscribe that comes while its subscribe still waits for Redis
# (tests/interop/hub_redis_unsub_pending.mjs), on one and on two loops.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
need_redis
start_redis
start_serve --redis "$REDIS_URL"
run_helper "unsubscribe while subscribing (1 loop)" node "$DX_SOURCE_DIR/tests/interop/hub_redis_unsub_pending.mjs" "$PORT"
start_serve --redis "$REDIS_URL" --threads 2
run_helper "unsubscribe while subscribing (2 loops)" node "$DX_SOURCE_DIR/tests/interop/hub_redis_unsub_pending.mjs" "$PORT"
finish
