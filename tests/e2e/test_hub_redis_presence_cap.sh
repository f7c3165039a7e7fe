#!/usr/bin/env bash
# Presence past --max-presence on the Redis broker: no join, and no leave told
# while the subscriber is still there (tests/interop/hub_redis_presence_cap.mjs).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
need_redis
start_redis
start_serve --redis "$REDIS_URL" --max-presence 1 --presence-ttl 2s
run_helper "presence cap helper" node "$DX_SOURCE_DIR/tests/interop/hub_redis_presence_cap.mjs" "$PORT"
finish
