#!/usr/bin/env bash
# A local try-out of duplex scaled out on Redis (docs/SCALING.md), without
# docker-compose: one redis-server, three `duplex serve --redis` nodes and
# nginx load-balancing WebSocket, SSE, long-polling and the HTTP API across
# them (docs/nginx/cluster.conf with this run's ports), all on 127.0.0.1.
# Data and logs go to a temp directory; Ctrl-C stops everything.
#
#   scripts/cluster.sh [OPTIONS] [-- EXTRA duplex serve FLAGS]
#     --port N        nginx's port (default 8080, or $PORT); the nodes get
#                     N+1..N+3 and redis-server N+10
#     --duplex PATH   this duplex binary (default: build Release into
#                     build/release/, as scripts/run.sh does)
#     --no-demo       no simulated market feed (default: node 1 runs --demo,
#                     whose ticks reach every node through Redis)
#     --check         start on free ports, check that a publication through
#                     nginx reaches subscribers through nginx (WebSocket and
#                     SSE) and one connected to a node directly, in order,
#                     and that one published on a node reaches them all;
#                     then stop and exit 0 (1 on failure). For
#                     tests/e2e/test_cluster_script.sh.
#   Environment: DUPLEX_API_KEY (default: a random key, printed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
conf_src="$root/docs/nginx/cluster.conf"

base=${PORT:-8080} duplex="" demo=1 check=0 extra=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --port) base=$2; shift ;;
  --duplex) duplex=$2; shift ;;
  --no-demo) demo=0 ;;
  --check) check=1 ;;
  -h | --help) usage; exit 0 ;;
  --) shift; extra=("$@"); break ;;
  *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }

for tool in redis-server nginx curl ss; do
  command -v "$tool" >/dev/null || [[ -x "/usr/sbin/$tool" ]] ||
    die "$tool is missing (Debian: apt-get install redis-server nginx curl iproute2; or scripts/deps.sh --test)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ -z "$duplex" ]]; then
  "$root/scripts/deps.sh"
  say "building duplex (Release) in build/release/"
  cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release -DDX_BUILD_TESTS=OFF \
    -DDX_BUILD_BENCH=OFF >/dev/null
  mkdir -p "$root/build"
  if ! cmake --build "$root/build/release" -j"$(nproc)" >"$root/build/release.log" 2>&1; then
    cat "$root/build/release.log" >&2
    exit 1
  fi
  duplex="$root/build/release/duplex"
fi
[[ -x "$duplex" ]] || die "no duplex binary at $duplex"

listening() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }
ports_free() { # BASE: nginx, three nodes and redis-server all free?
  local p
  for p in "$1" $(($1 + 1)) $(($1 + 2)) $(($1 + 3)) $(($1 + 10)); do
    listening "$p" && return 1
  done
  return 0
}
if ((check)); then # free ports, outside the ephemeral range
  for _ in $(seq 50); do
    base=$((20000 + RANDOM % 12000))
    ports_free "$base" && break
  done
fi
ports_free "$base" || die "a port of $base, $((base + 1))-$((base + 3)), $((base + 10)) is taken; try --port"
nport=$base rport=$((base + 10))
node_ports=($((base + 1)) $((base + 2)) $((base + 3)))

dir=$(mktemp -d "${TMPDIR:-/tmp}/duplex-cluster.XXXXXX")
key=${DUPLEX_API_KEY:-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
pids=() names=()
stop_all() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  pids=()
}
keep_dir=0
cleanup() {
  stop_all
  if ((keep_dir)); then say "logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME PORT CMD...: in the background, output to $dir/NAME.log; waits
# up to 15 s until PORT listens.
start() {
  local name=$1 port=$2
  shift 2
  "$@" </dev/null >"$dir/$name.log" 2>&1 &
  pids+=("$!") names+=("$name")
  for _ in $(seq 150); do
    listening "$port" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  keep_dir=1
  tail -n 20 "$dir/$name.log" >&2
  die "$name did not listen on port $port (log: $dir/$name.log)"
}

say "redis-server on 127.0.0.1:$rport (data in $dir)"
start redis "$rport" redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --save "" \
  --appendonly no --daemonize no --logfile ""
redis_url="redis://127.0.0.1:$rport"

for i in 0 1 2; do
  args=(serve --host 127.0.0.1 --port "${node_ports[i]}" --redis "$redis_url" --static "$root/web"
    --api-key "$key" --log-level info)
  ((i == 0 && demo)) && args+=(--demo)
  say "node $((i + 1)): duplex serve on 127.0.0.1:${node_ports[i]}$( ((i == 0 && demo)) && echo ' (--demo)')"
  start "node$((i + 1))" "${node_ports[i]}" "$duplex" "${args[@]}" "${extra[@]+"${extra[@]}"}"
done

# nginx: the documented file with this run's ports, in a prefix of our own.
mkdir -p "$dir/nginx/tmp"
sed -e "s/server 127\.0\.0\.1:8081 /server 127.0.0.1:${node_ports[0]} /" \
  -e "s/server 127\.0\.0\.1:8082 /server 127.0.0.1:${node_ports[1]} /" \
  -e "s/server 127\.0\.0\.1:8083 /server 127.0.0.1:${node_ports[2]} /" \
  -e "s/listen 80;/listen 127.0.0.1:$nport;/" "$conf_src" >"$dir/nginx/cluster.conf"
for want in "${node_ports[@]}" "listen 127.0.0.1:$nport;"; do
  grep -qF -- "$want" "$dir/nginx/cluster.conf" ||
    die "docs/nginx/cluster.conf changed: no line to put '$want' in"
done
# As root, nginx's workers would become nobody, who cannot use the temp prefix.
user=""
(($(id -u) == 0)) && user="user $(id -un);"
cat >"$dir/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
$user
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $dir/nginx/access.log;
  client_body_temp_path $dir/nginx/tmp/body;
  proxy_temp_path $dir/nginx/tmp/proxy;
  fastcgi_temp_path $dir/nginx/tmp/fastcgi;
  uwsgi_temp_path $dir/nginx/tmp/uwsgi;
  scgi_temp_path $dir/nginx/tmp/scgi;
  include $dir/nginx/cluster.conf;
}
EOF
"$NGINX" -t -q -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" 2>"$dir/nginx-t.log" ||
  { keep_dir=1; cat "$dir/nginx-t.log" >&2; die "nginx -t rejects the generated config"; }
say "nginx on 127.0.0.1:$nport (docs/nginx/cluster.conf)"
start nginx "$nport" "$NGINX" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log"

# Every node ready (its Redis connection up), and nginx answering.
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/readyz")" == 200 ]]; }
for url in "${node_ports[@]/#/http://127.0.0.1:}" "http://127.0.0.1:$nport"; do
  for _ in $(seq 100); do ready "$url" && break; sleep 0.1; done
  ready "$url" || { keep_dir=1; die "$url/readyz is not 200 within 10 s (logs: $dir)"; }
done

if ((!check)); then
  lb="http://127.0.0.1:$nport"
  cat <<EOF

duplex cluster up: nginx -> 3 nodes -> Redis (logs and data in $dir)
  pages          $lb/   (chat, ticker: open it in two browsers)
  WebSocket      ws://127.0.0.1:$nport/ws   (subprotocol duplex.v1)
  SSE            $lb/sse?topics=TOPIC
  long-polling   $lb/poll?topics=TOPIC
  publish        curl -H 'Authorization: Bearer $key' -d '{"topic":"news","data":"hi"}' $lb/api/publish
  nodes          ${node_ports[*]/#/http://127.0.0.1:}   (each: /metrics, /readyz)
  redis          redis-cli -p $rport
Ctrl-C stops everything.
EOF
  # Until Ctrl-C, or until one of them exits.
  set +e
  wait -n "${pids[@]}"
  for i in "${!pids[@]}"; do
    kill -0 "${pids[i]}" 2>/dev/null || { keep_dir=1; say "${names[i]} exited; stopping (logs: $dir)"; }
  done
  exit 1
fi

# --- --check --------------------------------------------------------------------
topic="check/cluster-$RANDOM"
sub='{"id":1,"op":"subscribe","topic":"'"$topic"'"}'
failed=0
bad() { say "check FAILED: $*"; failed=1; keep_dir=1; }
# WebSocket subscribers: through nginx, and on node 3 directly; each prints
# the welcome, the subscribe reply and 4 messages, then closes.
echo "$sub" >"$dir/subscribe.txt"
ws_sub() { # NAME URL
  timeout 30 "$duplex" connect -s duplex.v1 -n 6 "$2" <"$dir/subscribe.txt" \
    >"$dir/$1.out" 2>"$dir/$1.err" &
  pids+=("$!") names+=("$1")
}
ws_sub ws-nginx "ws://127.0.0.1:$nport/ws"
ws_sub ws-node3 "ws://127.0.0.1:${node_ports[2]}/ws"
curl -sN --max-time 30 "http://127.0.0.1:$nport/sse?topics=$topic" >"$dir/sse-nginx.out" 2>/dev/null &
pids+=("$!") names+=(sse-nginx)
for f in ws-nginx ws-node3 sse-nginx; do
  for _ in $(seq 100); do grep -q '"ok":true' "$dir/$f.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '"ok":true' "$dir/$f.out" 2>/dev/null || bad "$f: no subscribe reply within 10 s: $(cat "$dir/$f.out" "$dir/$f.err" 2>/dev/null)"
done
publish() { # URL DATA
  curl -sf --max-time 5 -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"topic":"'"$topic"'","data":"'"$2"'"}' "$1/api/publish" >/dev/null || bad "publish $2 to $1 failed"
}
publish "http://127.0.0.1:$nport" m1
publish "http://127.0.0.1:${node_ports[0]}" m2 # node 1 directly: crosses to the others through Redis
publish "http://127.0.0.1:$nport" m3
publish "http://127.0.0.1:${node_ports[1]}" m4
want="m1 m2 m3 m4"
got_of() { grep -o '"data":"m[0-9]"' "$dir/$1.out" 2>/dev/null | sed 's/"data":"\(m[0-9]\)"/\1/' | xargs; }
for f in ws-nginx ws-node3 sse-nginx; do
  for _ in $(seq 100); do [[ "$(got_of "$f")" == "$want" ]] && break; sleep 0.1; done
  got=$(got_of "$f")
  if [[ "$got" == "$want" ]]; then
    say "check: $f received $want, in order"
  else
    bad "$f received '$got', not '$want'"
  fi
done
# Offsets 1..4 on every subscriber: one numbering for the topic across nodes.
offs=$(grep '"type":"message"' "$dir/ws-node3.out" | grep -o '"offset":[0-9]*' | sed 's/.*://' | xargs)
[[ "$offs" == "1 2 3 4" ]] && say "check: offsets 1 2 3 4 on node 3 (one numbering across nodes)" ||
  bad "node 3's offsets: '$offs'"
# Long-polling through nginx: from offset 0 it gets all four at once; the
# next poll of its session (kept on one node by the sticky upstream) is
# answered 200, not 410 unknown_session.
epoch=$(grep -o '"epoch":"[0-9a-f]*"' "$dir/ws-node3.out" | head -1 | sed 's/.*:"\(.*\)"/\1/')
lb="http://127.0.0.1:$nport"
curl -s --max-time 10 "$lb/poll?topics=$topic&since=0.$epoch&timeout=5" >"$dir/poll1.out" 2>&1 || true
got=$(got_of poll1)
[[ "$got" == "$want" ]] && say "check: a long-poll through nginx received $want" || bad "poll: '$got' in $(cat "$dir/poll1.out")"
session=$(grep -o '"session":"[0-9a-zA-Z_-]*"' "$dir/poll1.out" | head -1 | sed 's/.*:"\(.*\)"/\1/')
since=$(grep -o '"since":"[^"]*"' "$dir/poll1.out" | tail -1 | sed 's/.*:"\(.*\)"/\1/')
code=$(curl -s -o "$dir/poll2.out" -w '%{http_code}' --max-time 10 \
  "$lb/poll?topics=$topic&session=$session&since=$since&timeout=0" || true)
[[ -n "$session" && "$code" == 200 ]] && say "check: the next poll of session ${session:0:8}... through nginx: 200" ||
  bad "next poll (session '$session'): $code $(cat "$dir/poll2.out")"
# History from any node: node 2 answers with all four.
hist=$(curl -sf --max-time 5 -H "Authorization: Bearer $key" \
  "http://127.0.0.1:${node_ports[1]}/api/history?topic=$(printf %s "$topic" | sed 's#/#%2F#g')" || true)
n=$(grep -o '"data":"m[0-9]"' <<<"$hist" | wc -l)
((n == 4)) && say "check: node 2's history has the 4 publications" || bad "node 2's history: $hist"
if ((failed)); then
  say "logs: $dir"
  exit 1
fi
say "check passed: publications through nginx and on nodes reached every subscriber"
