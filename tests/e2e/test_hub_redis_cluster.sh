#!/usr/bin/env bash
# duplex serve nodes on a 3-master Redis Cluster (issue 14): sharded pub/sub,
# one slot per topic, resume, history and presence across nodes, a slot that
# moves mid-stream.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
start_redis_cluster
start_serve --redis "$CLUSTER_URL" --api-key ckey --history-size 1000
a=$PORT
start_serve --redis "$CLUSTER_URL" --api-key ckey --history-size 1000 --threads 2
b=$PORT
run_helper "cluster helper" node "$DX_SOURCE_DIR/tests/interop/hub_redis_cluster.mjs" "$a" "$b" ckey "${CLUSTER_PORTS[@]}"
finish
