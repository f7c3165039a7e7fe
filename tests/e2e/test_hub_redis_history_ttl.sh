#!/usr/bin/env bash
# --history-ttl on the Redis broker: the same history whether the node
# mirrors the topic or asks Redis (tests/interop/hub_redis_history_ttl.mjs).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
need_redis
start_redis
opts=(--redis "$REDIS_URL" --api-key hkey --history-ttl 2s)
start_serve "${opts[@]}"
a=$PORT
start_serve "${opts[@]}"
b=$PORT
run_helper "history ttl helper" node "$DX_SOURCE_DIR/tests/interop/hub_redis_history_ttl.mjs" "$a" "$b" hkey
finish
