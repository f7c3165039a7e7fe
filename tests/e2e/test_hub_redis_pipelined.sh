#!/usr/bin/env bash
# Pipelined HTTP API calls through Redis (tests/e2e/hub_redis_pipelined.py):
# served while earlier ones wait for Redis, answered in order; one and two loops.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis
start_redis
start_serve --redis "$REDIS_URL" --api-key pkey
run_helper "pipelined API calls (1 loop)" "$PY" "$here/hub_redis_pipelined.py" "$PORT" pkey pl1
start_serve --redis "$REDIS_URL" --api-key pkey --threads 2
run_helper "pipelined API calls (2 loops)" "$PY" "$here/hub_redis_pipelined.py" "$PORT" pkey pl2
finish
