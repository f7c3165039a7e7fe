"""A small HTTP CONNECT proxy for test_connect_proxy.sh.

    python3 connect_proxy.py [--auth USER:PASS] [--status LINE]

Prints "port N", then one line per CONNECT request:
    CONNECT host:port auth=<Proxy-Authorization value or ->
Every target host is reached at 127.0.0.1 (the port is kept), so a test can
use names the machine cannot resolve. With --auth, a request without the
matching "Basic" credentials gets 407. --status replaces the success line
(e.g. "HTTP/1.0 204 Tunnel ready") to check that any 2xx opens the tunnel.
Runs until killed.
"""
import argparse
import base64
import socket
import sys
import threading

ap = argparse.ArgumentParser()
ap.add_argument("--auth")
ap.add_argument("--status", default="HTTP/1.1 200 Connection established")
args = ap.parse_args()


def log(s):
    print(s, flush=True)


def pipe(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(conn):
    head = b""
    while b"\r\n\r\n" not in head:
        b = conn.recv(4096)
        if not b:
            conn.close()
            return
        head += b
        if len(head) > 65536:
            conn.close()
            return
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
    auth = "-"
    for h in lines[1:]:
        name, _, value = h.partition(":")
        if name.strip().lower() == "proxy-authorization":
            auth = value.strip()
    log(f"{method} {target} auth={auth}")
    if method != "CONNECT":
        conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        conn.close()
        return
    if args.auth:
        want = "Basic " + base64.b64encode(args.auth.encode()).decode()
        if auth != want:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
    port = int(target.rsplit(":", 1)[1])
    try:
        up = socket.create_connection(("127.0.0.1", port), timeout=5)
        up.settimeout(None)
    except OSError:
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        conn.close()
        return
    conn.sendall(args.status.encode() + b"\r\n\r\n")
    if rest:
        up.sendall(rest)
    threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
    pipe(conn, up)


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    log(f"port {s.getsockname()[1]}")
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
