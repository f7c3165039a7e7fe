#!/usr/bin/env bash
# Large static files go out a chunk at a time: several slow readers of a
# 48 MiB file do not make the server hold the file in memory per reader,
# the bytes arrive intact, and a reader slower than the close timeout (but
# never stalled) is not cut off.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
dir="$DX_TMP/www"
mkdir -p "$dir"
head -c $((48 << 20)) /dev/urandom >"$dir/big.bin"
want=$(sha256sum <"$dir/big.bin" | cut -d' ' -f1)
# Freed memory stays in ASan's quarantine; keep it small so RSS tells the truth.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16"
start_echo --static "$dir"
rss() { awk '/VmRSS/ {print $2}' "/proc/$ECHO_PID/status"; }
before=$(rss)
"$PY" - "$PORT" "$DX_TMP" <<'PYEOF' &
import socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(4):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
# Three readers sip slowly for a while; one reads the whole file, slowly at first.
deadline = time.time() + 4
data = bytearray()  # everything socks[0] receives, head included
while time.time() < deadline:
    for i, s in enumerate(socks):
        b = s.recv(4096)
        if i == 0:
            data += b
    time.sleep(0.01)
open(f"{tmp}/slow.done", "w").close()
s = socks[0]
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    data += b
head, _, body = bytes(data).partition(b"\r\n\r\n")
open(f"{tmp}/body.bin", "wb").write(body)
PYEOF
reader=$!
wait_file "$DX_TMP/slow.done" 30 || fail "the slow readers did not finish"
during=$(rss)
grow=$(((during - before) / 1024))
log "server RSS ${before} kB before, ${during} kB with 4 slow readers of a 48 MiB file"
((grow < 40)) && pass "memory grew ${grow} MiB for 4 readers of 48 MiB (chunked, not whole files)" ||
  check_fail "memory grew ${grow} MiB: files are being queued whole"
wait "$reader" || check_fail "reader failed"
got=$(sha256sum <"$DX_TMP/body.bin" 2>/dev/null | cut -d' ' -f1)
[[ "$got" == "$want" ]] && pass "a slow reader got all 48 MiB intact" ||
  check_fail "body mismatch ($(stat -c %s "$DX_TMP/body.bin" 2>/dev/null) bytes)"
finish
