#!/usr/bin/env bash
# GET /metrics (Prometheus text) and /readyz of duplex serve, checked with
# Python websockets clients and prometheus_client's parser.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
"$PY" -c 'import prometheus_client' 2>/dev/null || fail "python3-prometheus-client missing: run scripts/deps.sh --test"
secret="metrics-secret-$RANDOM-0123456789"
start_serve --api-key mkey --token-secret "$secret"
run_helper "metrics" "$PY" "$here/hub_metrics.py" "$PORT" mkey "$secret"
finish
