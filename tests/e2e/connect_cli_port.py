"""Port fixtures for test_connect_cli.sh.

    python3 connect_cli_port.py hold     bind 127.0.0.1:0 with SO_REUSEADDR and
                                         SO_REUSEPORT but never listen: connects
                                         are refused, no one else can take the
                                         port, and a server with SO_REUSEPORT
                                         (duplex echo --threads 2) can still
                                         bind it later
    python3 connect_cli_port.py silent   listen, accept, never answer

Prints "port N" and runs until killed.
"""
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
