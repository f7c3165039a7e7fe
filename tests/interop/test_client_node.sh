#!/usr/bin/env bash
# Interop: `duplex connect` (the duplex client) against a Node `ws` server
# (client_peer_node.mjs): text/binary/large/fragmented messages, subprotocol
# negotiation, ping from the server, close codes both ways, request headers,
# SIGINT. The cases are in client_cases.sh.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
source "$here/client_cases.sh"

need_node_modules ws
[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
start_peer node "$here/client_peer_node.mjs"
client_cases node
finish
