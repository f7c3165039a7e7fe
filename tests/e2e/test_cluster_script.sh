#!/usr/bin/env bash
# scripts/cluster.sh, the local scale-out try-out (redis-server, three
# duplex serve --redis nodes, nginx from docs/nginx/cluster.conf): --check
# passes (publications through nginx and on single nodes reach subscribers
# through nginx on WebSocket and SSE and one on a node directly, in order,
# with one numbering); started for real it prints its URLs, serves the page
# through nginx, and SIGTERM stops every process it started and removes its
# temp directory.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_redis
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || fail "no nginx: run scripts/deps.sh --test"
script="$DX_SOURCE_DIR/scripts/cluster.sh"

out="$DX_TMP/check.out"
rc=0
TMPDIR="$DX_TMP" timeout -k 5 90 "$script" --check --duplex "$DUPLEX" >"$out" 2>&1 || rc=$?
if ((rc == 0)) && grep -q 'check passed' "$out"; then
  pass "cluster.sh --check passes: $(grep -c 'check: ' "$out") checks"
else
  check_fail "cluster.sh --check exited $rc: $(cat "$out")"
fi

# For real, on free ports, then SIGTERM (a background job ignores SIGINT).
base=""
for _ in $(seq 50); do
  b=$((20000 + RANDOM % 12000)) taken=0
  for p in $b $((b + 1)) $((b + 2)) $((b + 3)) $((b + 10)); do
    [[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]] && taken=1
  done
  ((taken)) || { base=$b; break; }
done
[[ -n "$base" ]] || fail "no free ports"
mkdir -p "$DX_TMP/run"
log="$DX_TMP/run.out"
TMPDIR="$DX_TMP/run" DUPLEX_API_KEY=trykey "$script" --port "$base" --no-demo --duplex "$DUPLEX" >"$log" 2>&1 &
pid=$!
t0=$(now_us)
until grep -q 'Ctrl-C stops everything' "$log"; do
  proc_gone "$pid" && fail "cluster.sh exited early: $(cat "$log")"
  (($(now_us) - t0 < 30000000)) || { kill -TERM "$pid"; fail "cluster.sh not up within 30 s: $(cat "$log")"; }
  sleep 0.1
done
grep -q "ws://127.0.0.1:$base/ws" "$log" && grep -q "Bearer trykey" "$log" &&
  pass "it prints the URLs and the API key" || check_fail "URLs: $(cat "$log")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$base/")
[[ "$code" == 200 ]] && pass "the page through nginx: 200" || check_fail "GET / through nginx: $code"
dir=$(sed -n 's/.*logs and data in \([^)]*\)).*/\1/p' "$log")
[[ -d "$dir" ]] || check_fail "no temp dir named in: $(cat "$log")"
children=$(pgrep -P "$pid" | xargs)
kill -TERM "$pid"
t0=$(now_us)
while ! proc_gone "$pid" && (($(now_us) - t0 < 15000000)); do sleep 0.1; done
proc_gone "$pid" && pass "SIGTERM stops cluster.sh" || { kill -KILL "$pid"; check_fail "cluster.sh still running 15 s after SIGTERM"; }
wait "$pid" 2>/dev/null
left=""
for c in $children; do proc_gone "$c" || left+=" $c"; done
[[ -z "$left" && -n "$children" ]] && pass "its $(wc -w <<<"$children") processes are gone" ||
  check_fail "processes left:$left (children were: $children)"
[[ -n "$dir" && ! -e "$dir" ]] && pass "its temp directory is removed" || check_fail "$dir still there"
for p in $base $((base + 1)) $((base + 10)); do
  [[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]] || check_fail "port $p still listening"
done
finish
