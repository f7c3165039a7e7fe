#!/usr/bin/env bash
# Interop: `duplex serve --threads 2`: 40 connections spread over both event
# loops (SO_REUSEPORT); publications from several connections reach every
# subscriber in offset order, resume works on whichever loop the new
# connection lands, presence (query, join, leave) spans the loops.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
start_serve --threads 2 --history-size 1000
run_helper "hub node client, --threads 2" node "$here/hub_node.mjs" "$PORT" threads
run_helper "hub python client, --threads 2 (resume)" "$PY" "$here/hub_py.py" "$PORT" resume
run_helper "hub python client, --threads 2 (presence)" "$PY" "$here/hub_py.py" "$PORT" presence
finish
