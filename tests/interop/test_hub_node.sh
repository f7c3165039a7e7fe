#!/usr/bin/env bash
# Interop: Node `ws` clients speak the hub protocol (docs/PROTOCOL.md) to
# `duplex serve`: ids and replies, subscribe/publish/unsubscribe, skip_self,
# payloads, malformed envelopes, the 4000 and 1009 closes, size limits,
# ordering under concurrent publishers, resume, history, presence; then a
# small history (too_old) and a short history TTL (expiry, new epochs);
# the main run again with permessage-deflate.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
helper="$here/hub_node.mjs"
start_serve --history-size 1000 --max-publication 1024 --max-message 16384 --max-subscriptions 2
DX_HUB_LIMITS='{"max_publication":1024,"max_subscriptions":2,"history_size":1000,"history_ttl":300}' \
  run_helper "hub node client" node "$helper" "$PORT" main
# The same with permessage-deflate (the ws client offers it).
start_serve --history-size 1000 --max-publication 1024 --max-message 16384 --max-subscriptions 2 --deflate
DX_EXPECT_DEFLATE=1 run_helper "hub node client, --deflate" node "$helper" "$PORT" main
start_serve --history-size 5
run_helper "hub node client, --history-size 5" node "$helper" "$PORT" small
start_serve --history-ttl 1s
run_helper "hub node client, --history-ttl 1s" node "$helper" "$PORT" ttl
finish
