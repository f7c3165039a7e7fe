"""Port fixtures for test_connect_cli.sh.

    python3 connect_cli_port.py hold     bind 127.0.0.1:0 with SO_REUSEADDR and
                                         SO_REUSEPORT but never listen: connects
                                         are refused, no one else can take the
                                         port, and a server with SO_REUSEPORT
                                         (duplex echo --threads 2) can still
                                         bind it later
    python3 connect_cli_port.py silent   listen, accept, never answer
    python3 connect_cli_port.py mute     listen, accept, answer the WebSocket
                                         handshake, then never send (or read)
                                         anything: no pongs

Prints "port N" and runs until killed.
"""
import base64
import hashlib
import signal
import socket
import sys
import time

mode = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if mode == "hold":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", 0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"port {s.getsockname()[1]}", flush=True)
if mode == "hold":
    while True:
        time.sleep(3600)
s.listen(16)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)  # keep it open, say nothing
    if mode == "mute":
        head = b""
        while b"\r\n\r\n" not in head:
            b = conn.recv(4096)
            if not b:
                break
            head += b
        key = ""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
