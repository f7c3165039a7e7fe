#!/usr/bin/env bash
# tls_deflate.sh: what wss:// and permessage-deflate cost a server, duplex
# next to Node ws.
#
# usage: bench/tls_deflate.sh [OPTIONS]
#   --quick            2 rounds of 3 s runs (default: 3 rounds of 6 s runs)
#   --rounds R         rounds (each round runs every server once, in turn)
#   --duration T       measured seconds per run (warmup is 1 s on top)
#   --parts LIST       tls, deflate or tls,deflate (default both)
#   --connections N    connections for the deflate part (default 1000)
#   --key-type TYPE    server key: ec (P-256, default) or rsa (2048 bits)
#   --duplex PATH      use this duplex binary instead of building one
#   --no-install       do not npm install Node ws if it is missing
#   --out FILE         raw results (default bench/results/tls_deflate-<date>.txt)
#   -h, --help         this help
#
# Part tls: `duplex echo` over ws:// and over wss:// (--tls-cert/--tls-key),
# and Node ws over http and over https.createServer (bench/peers/), loaded by
# `duplex bench`: (1) 100 conns x 16 B x 8 in flight, (2) 100 x 4 KiB x 1,
# (3) handshakes, 50 at a time (a full TLS handshake each: no resumption).
# Part deflate: `duplex echo` without compression, --deflate (shared),
# --deflate-mode takeover, takeover with window bits 10 and memLevel 4, and
# Node ws with perMessageDeflate off, default, and no context takeover both
# ways. For each: (5) a Node ws client (bench/peers/deflate_client.mjs) with ws's default
# offer (context takeover) sending 4 KiB JSON-like text, (6) memory: server
# VmRSS after N connections have each echoed 3 compressed messages, minus
# VmRSS before, per connection; and the compression ratio seen on the wire.
# (Scenario numbers are kept stable across versions: an earlier (4) drove
# the servers with `duplex bench --deflate`, whose offer forces no context
# takeover whatever the server's mode, so its rows were mislabelled.)
#
# Servers are pinned to CPU 0, load generators to CPU 1, started fresh for
# each run and run in alternation. The main metric is work per server
# CPU-second: utime+stime of the server process (all its threads) from
# /proc/PID/stat, read at the load generator's first and last per-second
# progress line. Tables show medians over the rounds. A throwaway CA and
# server certificate are made with `openssl` in a temporary directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds=3 duration=6 warmup=1 parts="tls,deflate" nconns=1000 key_type=ec
duplex_bin="" install=1 out=""
port=9411

usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
  --quick) rounds=2 duration=3 ;;
  --rounds) rounds="$2"; shift ;;
  --duration) duration="$2"; shift ;;
  --parts) parts="$2"; shift ;;
  --connections) nconns="$2"; shift ;;
  --key-type) key_type="$2"; shift ;;
  --duplex) duplex_bin="$2"; shift ;;
  --no-install) install=0 ;;
  --out) out="$2"; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "tls_deflate.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$key_type" == ec || "$key_type" == rsa ]] || { echo "tls_deflate.sh: --key-type ec or rsa" >&2; exit 2; }

log() { printf '[tls_deflate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$1," == *",$2,"* ]]; }

for tool in node openssl taskset ss python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing (scripts/deps.sh --test installs it)"; exit 1; }
done
# N connections on each side, plus a few.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < nconns + 100)); then
  log "ulimit -n is $(ulimit -n), too low for $nconns connections"; exit 1
fi

# --- Node ws: bench/node_modules, else tests/interop/node_modules -----------
if [[ ! -d "$here/node_modules/ws" && ! -d "$root/tests/interop/node_modules/ws" ]]; then
  ((install)) || { log "Node ws missing (and --no-install)"; exit 1; }
  log "npm install in tests/interop (pinned test peers, as scripts/deps.sh --test does)"
  (cd "$root/tests/interop" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
ws_dir="$here/node_modules/ws"
[[ -d "$ws_dir" ]] || ws_dir="$root/tests/interop/node_modules/ws"

# --- duplex: a build tree of our own, so nobody's rebuild swaps the binary --
if [[ -z "$duplex_bin" ]]; then
  log "building duplex (Release) in build-tlsd/"
  cmake -S "$root" -B "$root/build-tlsd" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$root/build-tlsd" -j2 --target duplex_cli >/dev/null
  duplex_bin="$root/build-tlsd/duplex"
fi

# --- throwaway CA and server certificate ------------------------------------
tmp="$(mktemp -d)"
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
holder_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null || true
  [[ -n "$holder_pid" ]] && kill -KILL "$holder_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ "$key_type" == ec ]]; then newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else newkey=(-newkey rsa:2048); fi
openssl req -x509 "${newkey[@]}" -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
  -subj "/CN=duplex bench throwaway CA" -days 2 2>/dev/null
openssl req "${newkey[@]}" -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
  -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days 2 -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null

# --- results file -------------------------------------------------------------
mkdir -p "$here/results"
out="${out:-$here/results/tls_deflate-$(date +%Y-%m-%d-%H%M%S).txt}"
{
  echo "# bench/tls_deflate.sh raw results, $(date -Is)"
  echo "# rounds=$rounds duration=${duration}s warmup=${warmup}s parts=$parts connections=$nconns key=$key_type"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; kernel $(uname -r)"
  echo "# duplex: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$root" diff --quiet HEAD -- src include app 2>/dev/null || echo ' (src/include/app modified)')"
  echo "# duplex binary: $duplex_bin"
  echo "# openssl (duplex): $(openssl version); zlib: $(dpkg-query -W -f='${Version}' zlib1g 2>/dev/null || echo ?)"
  echo "# node: $(node --version) (openssl $(node -p process.versions.openssl), zlib $(node -p process.versions.zlib)), ws: $(node -p "require('$ws_dir/package.json').version")"
  echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# columns: part scenario server round json"
} >"$out"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  log "warning: load average is $load on $(nproc) CPUs; results will be noisy"
fi

# --- the measuring wrapper ----------------------------------------------------
# Runs a load generator, timestamps its per-second progress lines on stderr
# ("...: Ns COUNT ..."), reads the server's and its own CPU ticks at each, and
# prints one JSON object: the generator's own JSON summary plus the rates over
# the window from its first to its last progress line.
cat >"$tmp/measure.py" <<'EOF'
import json, os, re, subprocess, sys, time
spid = int(sys.argv[1]); cmd = sys.argv[2:]
tck = os.sysconf('SC_CLK_TCK')
def ticks(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            f = f.read().rsplit(')', 1)[1].split()
        return int(f[11]) + int(f[12])  # utime, stime (all threads)
    except OSError:
        return None
prog = re.compile(r':\s+(\d+)s\s+(\d+) ')
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
marks = []
for line in p.stderr:
    m = prog.search(line)
    if m:
        marks.append((time.monotonic(), ticks(spid), ticks(p.pid), int(m.group(2))))
    elif line.strip():
        sys.stderr.write(line)
outp = p.stdout.read()
rc = p.wait()
res = {}
for line in outp.splitlines():
    if line.startswith('{'):
        res = json.loads(line)
res['rc'] = rc
if len(marks) >= 2 and marks[0][1] is not None and marks[-1][1] is not None:
    wall = marks[-1][0] - marks[0][0]
    n = sum(m[3] for m in marks[1:])
    scpu = (marks[-1][1] - marks[0][1]) / tck
    ccpu = (marks[-1][2] - marks[0][2]) / tck if marks[-1][2] is not None else 0
    res.update(window_s=round(wall, 3), count=n, rate=n / wall, server_cpu_s=scpu,
               server_util=scpu / wall, client_util=ccpu / wall,
               per_server_cpu_s=n / scpu if scpu > 0 else 0, per_second=[m[3] for m in marks])
else:
    res['failed'] = 'no progress lines'
print(json.dumps(res))
EOF

# --- servers --------------------------------------------------------------------
tls_opts="--tls-cert $tmp/server.pem --tls-key $tmp/server.key"
dx="$duplex_bin echo --host 127.0.0.1 --port $port --log-level warn --max-connections 50000"
server_cmd() { # NAME -> command line
  case "$1" in
  duplex-ws | duplex-off) echo "$dx" ;;
  duplex-wss) echo "$dx $tls_opts" ;;
  duplex-shared) echo "$dx --deflate" ;;
  duplex-takeover) echo "$dx --deflate --deflate-mode takeover" ;;
  duplex-takeover-w10m4) echo "$dx --deflate --deflate-mode takeover --deflate-window-bits 10 --deflate-mem-level 4" ;;
  node-ws | node-off) echo "node $here/peers/node_deflate_echo.mjs --mode off --port $port" ;;
  node-wss) echo "node $here/peers/node_wss_echo.mjs --cert $tmp/server.pem --key $tmp/server.key --port $port" ;;
  node-default) echo "node $here/peers/node_deflate_echo.mjs --mode default --port $port" ;;
  node-no-takeover) echo "node $here/peers/node_deflate_echo.mjs --mode no-takeover --port $port" ;;
  *) log "unknown server $1"; exit 1 ;;
  esac
}
url_of() { [[ "$1" == *wss ]] && echo "wss://127.0.0.1:$port/" || echo "ws://127.0.0.1:$port/"; }
start_server() { # NAME
  # shellcheck disable=SC2046
  start_pinned "$port" "$out.log" $(server_cmd "$1") && return 0
  log "$1 did not start listening on port $port (see $out.log)"
  return 1
}
stop_server() { stop_pinned "$port"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

bench_args() { # SCENARIO SERVER
  local tls=""
  [[ "$2" == *wss ]] && tls="--ca $tmp/ca.pem"
  case "$1" in
  1) echo "-c 100 -s 16 -k 8 $tls" ;;
  2) echo "-c 100 -s 4096 -k 1 $tls" ;;
  3) echo "--handshakes -c 50 $tls" ;;
  esac
}

run_load() { # SCENARIO SERVER -> JSON
  local sc=$1 srv=$2
  if [[ "$sc" == 5 ]]; then
    # shellcheck disable=SC2046
    python3 "$tmp/measure.py" "$server_pid" taskset -c 1 node "$here/peers/deflate_client.mjs" \
      "$(url_of "$srv")" --job echo -c "$nconns" --size 4096 --payload json \
      --duration "$duration" --warmup "$warmup" 2>>"$out.log"
  else
    # shellcheck disable=SC2046
    python3 "$tmp/measure.py" "$server_pid" taskset -c 1 "$duplex_bin" bench "$(url_of "$srv")" \
      $(bench_args "$sc" "$srv") -d "${duration}s" -w "${warmup}s" --json 2>>"$out.log"
  fi
}

run_memory() { # SERVER -> JSON
  local srv=$1 ctl r0 r1 a0 a1 ready="" probe="{}" lg
  local client="$here/peers/deflate_client.mjs" url
  url="$(url_of "$srv")"
  # One connection comes and goes first: it faults in the code paths and
  # allocates what is per server, not per connection (the shared
  # compressor, OpenSSL/zlib tables, the JIT's first code).
  echo | taskset -c 1 node "$client" "$url" -c 1 --messages 3 >/dev/null 2>>"$out.log" || true
  sleep 0.5
  r0=$(status_kb "$server_pid" VmRSS) a0=$(status_kb "$server_pid" RssAnon)
  ctl="$tmp/hold.ctl"
  rm -f "$ctl" && mkfifo "$ctl"
  taskset -c 1 node "$client" "$url" -c "$nconns" --messages 3 --payload json <"$ctl" >"$ctl.out" 2>>"$out.log" &
  lg=$! holder_pid=$!
  exec 7>"$ctl"
  for _ in $(seq 600); do
    ready=$(sed -n 's/^READY //p' "$ctl.out" 2>/dev/null)
    [[ -n "$ready" ]] && break
    kill -0 "$lg" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1 # let the server settle
  r1=$(status_kb "$server_pid" VmRSS) a1=$(status_kb "$server_pid" RssAnon)
  exec 7>&-
  wait "$lg" || true
  holder_pid=""
  # What the payload of `duplex bench` compresses to (a few connections).
  probe=$(echo | taskset -c 1 node "$client" "$url" -c 10 --messages 3 --payload x 2>>"$out.log" |
    sed -n 's/^READY //p')
  [[ -n "$ready" ]] || ready='{"failed":"holder"}'
  [[ -n "$probe" ]] || probe='{}'
  python3 - "$ready" "$probe" "$nconns" "$r0" "$r1" "$a0" "$a1" <<'EOF'
import json, sys
d = json.loads(sys.argv[1]); p = json.loads(sys.argv[2])
n, r0, r1, a0, a1 = map(int, sys.argv[3:8])
d.update(rss_before_kb=r0, rss_after_kb=r1, anon_before_kb=a0, anon_after_kb=a1,
         bytes_per_conn=(r1 - r0) * 1024 / n, anon_bytes_per_conn=(a1 - a0) * 1024 / n,
         x_ratio_server_to_client=p.get('ratio_server_to_client', 0))
print(json.dumps(d))
EOF
}

# --- the plan -------------------------------------------------------------------
plan=() # "part scenario server1,server2,..."
if has "$parts" tls; then
  for sc in 1 2 3; do plan+=("tls $sc duplex-ws,duplex-wss,node-ws,node-wss"); done
fi
if has "$parts" deflate; then
  dsrv="duplex-off,duplex-shared,duplex-takeover,duplex-takeover-w10m4,node-off,node-default,node-no-takeover"
  for sc in 5 6; do plan+=("deflate $sc $dsrv"); done
fi
total=0
for p in "${plan[@]}"; do
  IFS=, read -ra s <<<"${p##* }"
  total=$((total + rounds * ${#s[@]}))
done
log "$total runs, $rounds rounds, ${duration}s each (+${warmup}s warmup); raw results in $out"

done_runs=0
for p in "${plan[@]}"; do
  read -r part sc srvs <<<"$p"
  IFS=, read -ra srv_list <<<"$srvs"
  for ((r = 1; r <= rounds; r++)); do
    for srv in "${srv_list[@]}"; do
      done_runs=$((done_runs + 1))
      json='{"failed":"start"}'
      if start_server "$srv"; then
        if [[ "$sc" == 6 ]]; then json=$(run_memory "$srv"); else json=$(run_load "$sc" "$srv"); fi
        [[ -n "$json" ]] || json='{"failed":"no output"}'
        if ! kill -0 "$server_pid" 2>/dev/null; then
          wait "$server_pid" 2>/dev/null && st=0 || st=$?
          log "$srv EXITED during scenario $sc round $r (status $st; see $out.log)"
          json='{"failed":"server exited"}'
        fi
        stop_server
      fi
      echo "$part $sc $srv $r $json" >>"$out"
      log "[$done_runs/$total] scenario $sc round $r $srv: $(cut -c1-220 <<<"$json")"
    done
  done
done

# TLS parameters each wss server negotiated (once, informational).
if has "$parts" tls; then
  for srv in duplex-wss node-wss; do
    start_server "$srv" || continue
    info=$(openssl s_client -connect "127.0.0.1:$port" -CAfile "$tmp/ca.pem" </dev/null 2>/dev/null |
      grep -E '^(New,|Server Temp Key|Protocol|    Cipher)' | tr -s ' ' | paste -sd';' || true)
    echo "# tls $srv: $info" >>"$out"
    stop_server
  done
fi

# --- summary ----------------------------------------------------------------------
echo "# summary (medians over rounds)" >>"$out"
python3 - "$out" <<'EOF' | tee /dev/stderr | sed 's/^/# /' >>"$out"
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith('#'): continue
    parts = line.split(' ', 4)
    if len(parts) != 5 or not parts[4].startswith('{'): continue
    part, sc, srv, rnd, js = parts
    d = json.loads(js)
    if 'failed' in d: continue
    rows.setdefault(sc, {}).setdefault(srv, []).append(d)
med = lambda runs, k: statistics.median(r[k] for r in runs)
names = {'1': '(1) 100 conns x 16 B x 8 in flight', '2': '(2) 100 conns x 4 KiB x 1 in flight',
         '3': '(3) handshakes, 50 at a time',
         '5': '(5) Node ws client, default offer (context takeover), 4 KiB JSON-like text',
         '6': '(6) memory per connection after 3 compressed echoes each'}
for sc in sorted(rows):
    srvs = rows[sc]
    print(f'\n{names.get(sc, sc)}')
    if sc == '6':
        print('| server | runs | negotiated | VmRSS bytes/conn | RssAnon bytes/conn | VmRSS before -> after, kB | wire ratio, JSON (server->client) | wire ratio, bench payload |')
        print('| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |')
        for s, runs in srvs.items():
            ext = '; '.join(sorted(set(e for r in runs for e in r.get('extensions', [])))) or '-'
            print(f"| {s} | {len(runs)} | {ext} | {med(runs, 'bytes_per_conn'):,.0f} | {med(runs, 'anon_bytes_per_conn'):,.0f} "
                  f"| {med(runs, 'rss_before_kb'):,.0f} -> {med(runs, 'rss_after_kb'):,.0f} "
                  f"| {med(runs, 'ratio_server_to_client'):.2f} | {med(runs, 'x_ratio_server_to_client'):.0f} |")
        continue
    unit = 'handshakes' if sc == '3' else 'echoes'
    ratio_col = ' | wire ratio (server->client)' if sc == '5' else ''
    print(f'| server | runs | {unit}/s | {unit} per server CPU-s | server CPU | loadgen CPU{ratio_col} | errors |')
    print('| --- | ---: | ---: | ---: | ---: | ---: |' + (' ---: |' if ratio_col else '') + ' ---: |')
    for s, runs in srvs.items():
        extra = f" | {med(runs, 'ratio_server_to_client'):.2f}" if ratio_col else ''
        errs = sum(r.get('errors', 0) for r in runs)
        print(f"| {s} | {len(runs)} | {med(runs, 'rate'):,.0f} | {med(runs, 'per_server_cpu_s'):,.0f} "
              f"| {100 * med(runs, 'server_util'):.0f}% | {100 * med(runs, 'client_util'):.0f}%{extra} | {errs} |")
    pc = {s: med(runs, 'per_server_cpu_s') for s, runs in srvs.items()}
    pairs = [('duplex-wss', 'duplex-ws'), ('duplex-wss', 'node-wss'), ('node-wss', 'node-ws'), ('duplex-ws', 'node-ws'),
             ('duplex-shared', 'duplex-off'), ('duplex-takeover', 'duplex-shared'), ('duplex-takeover-w10m4', 'duplex-takeover'),
             ('duplex-shared', 'node-no-takeover'), ('duplex-takeover', 'node-default'), ('node-default', 'node-off')]
    rat = [f'{a}/{b} {pc[a] / pc[b]:.2f}' for a, b in pairs if pc.get(a) and pc.get(b)]
    if rat: print('per server CPU-s ratios: ' + ', '.join(rat))
EOF
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out"
log "raw results and summary: $out; server/loadgen stderr: $out.log"
