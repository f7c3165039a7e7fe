#!/usr/bin/env bash
# Streamed HTTP answers with a real client: examples/http_stream (a
# Server-Sent Events clock at /events on dx_http_defer and the
# dx_http_stream_* functions) read by curl --no-buffer: events arrive one
# by one as they are sent (not all at the end), the chunked stream ends
# cleanly, HTTP/1.0 gets a close-delimited stream, a second request reuses
# the kept-alive connection, a client leaving mid-stream is noticed
# (on_gone), and SIGTERM during a stream exits 0.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
command -v curl >/dev/null || fail "curl is missing"

start_example http_stream
url="http://127.0.0.1:$PORT/events"

# 1. curl -N: each event stamped on arrival; they come ~100 ms apart.
out="$DX_TMP/curl1.out"
curl -sS -N --max-time 10 -D "$DX_TMP/head1" "$url" |
  while IFS= read -r line; do [[ -n "$line" ]] && printf '%s %s\n' "$(date +%s%3N)" "$line"; done >"$out"
grep -qi '^Transfer-Encoding: chunked' "$DX_TMP/head1" && grep -qi '^Content-Type: text/event-stream' "$DX_TMP/head1" &&
  pass "HTTP/1.1: chunked text/event-stream" || check_fail "head: $(cat "$DX_TMP/head1")"
[[ "$(awk '{print $2, $3}' "$out" | tr '\n' ' ')" == "data: 1 data: 2 data: 3 data: 4 data: 5 " ]] &&
  pass "five events, in order, the stream ended cleanly" || check_fail "events: $(cat "$out")"
first=$(head -1 "$out" | cut -d' ' -f1)
last=$(tail -1 "$out" | cut -d' ' -f1)
((last - first >= 300)) && pass "events arrive as sent (spread over $((last - first)) ms)" ||
  check_fail "events arrived together ($((last - first)) ms): buffered, not streamed"

# 2. HTTP/1.0: close-delimited, no chunked framing.
body=$(curl -sS -0 --max-time 10 -D "$DX_TMP/head2" "$url")
! grep -qi '^Transfer-Encoding' "$DX_TMP/head2" && grep -qi '^Connection: close' "$DX_TMP/head2" &&
  [[ "$(printf '%s' "$body" | grep -c '^data: ')" == 5 ]] &&
  pass "HTTP/1.0: close-delimited stream of five events" || check_fail "HTTP/1.0: $(cat "$DX_TMP/head2") $body"

# 3. Two streams on one kept-alive connection.
curl -sS -N --max-time 10 -v "$url" "$url" >"$DX_TMP/curl3.out" 2>"$DX_TMP/curl3.err"
[[ "$(grep -c '^data: ' "$DX_TMP/curl3.out")" == 10 ]] && grep -qi 're-\?using\|Re-using existing connection\|Reusing' "$DX_TMP/curl3.err" &&
  pass "keep-alive: a second stream on the same connection" ||
  check_fail "keep-alive: $(grep -c '^data: ' "$DX_TMP/curl3.out") events; $(grep -i 'connect\|reus' "$DX_TMP/curl3.err" | head -5)"

# 4. A client that leaves mid-stream: the server notices (on_gone).
curl -sS -N --max-time 0.25 "$url" >/dev/null 2>&1 || true
for _ in $(seq 40); do grep -q '^gone ' "$log_file" && break; sleep 0.05; done
grep -q '^gone .* after [0-9] event' "$log_file" && pass "a client leaving mid-stream is gone (on_gone)" ||
  check_fail "no gone line: $(tail -5 "$log_file")"

# 5. SIGTERM while a stream is open: the stream is ended, the server exits 0.
curl -sS -N --max-time 10 "$url" >"$DX_TMP/curl5.out" 2>&1 &
cpid=$!
for _ in $(seq 40); do grep -q '^data: 1' "$DX_TMP/curl5.out" && break; sleep 0.05; done
t0=$(date +%s%3N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
DX_SERVER_PIDS=()
wait "$cpid" 2>/dev/null || true
t1=$(date +%s%3N)
[[ $rc == 0 ]] && ((t1 - t0 < 2000)) && pass "SIGTERM mid-stream: exited 0 in $((t1 - t0)) ms" ||
  check_fail "SIGTERM: exit $rc after $((t1 - t0)) ms: $(tail -5 "$log_file")"
sanitizer_report_in "$log_file" && check_fail "sanitizer report in the server log"
finish
