"""Clients for the graceful-shutdown test. The shell script sends the signal
once READY_FILE exists and checks the server's exit.

    sigterm.py clients PORT READY_FILE    # three clients that answer the close
    sigterm.py stubborn PORT READY_FILE   # plus one that never answers, one
                                          # stuck mid-handshake, one idle TCP
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import OP_TEXT, Closed, Report, Timeout, open_ws, upgrade_request  # noqa: E402

MODE, PORT, READY = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = Report(f"sigterm ({MODE})")


def main():
    clients = []
    for i in range(3):
        c = open_ws(PORT, f"/c{i}")
        op, p = c.echo(OP_TEXT, f"hello {i}".encode())
        r.check(f"client {i} connected and echoes", (op, p) == (OP_TEXT, f"hello {i}".encode()), f"got {op} {p!r}")
        clients.append(c)
    extra = []
    stubborn = None
    if MODE == "stubborn":
        stubborn = open_ws(PORT, "/stubborn")
        half = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        half.sendall(upgrade_request(PORT)[:20])  # stuck mid-handshake
        idle = socket.create_connection(("127.0.0.1", PORT), timeout=5)  # says nothing
        extra = [half, idle]
    time.sleep(0.2)  # let the server register everything
    with open(READY, "w") as f:
        f.write("ready\n")

    # Now the shell sends SIGTERM.
    t0 = time.monotonic()
    for i, c in enumerate(clients):
        try:
            code, reason = c.expect_close(timeout=max(0.1, t0 + 10 - time.monotonic()))
            r.check(f"client {i} receives close 1001 (going away)", code == 1001,
                    f"close code {code} reason {reason!r}")
            c.send_close(1001)  # answer, completing the closing handshake
            c.wait_eof(5.0)
            r.ok(f"client {i}: TCP closed by the server after the closing handshake")
        except (Closed, Timeout, AssertionError) as e:
            r.not_ok(f"client {i} receives close 1001 and the connection ends", f"{type(e).__name__}: {e}")
        c.close()
    if stubborn is not None:
        try:
            code, _ = stubborn.expect_close(timeout=max(0.1, t0 + 10 - time.monotonic()))
            r.check("a client that will not answer also receives close 1001", code == 1001, f"code {code}")
            t = stubborn.wait_eof(20.0)  # never answers; the server gives up on it
            print(f"# the server dropped the unanswering client {t:.1f} s after its close frame")
            r.ok("the server drops the client that never answers its close")
        except (Closed, Timeout, AssertionError) as e:
            r.not_ok("the unanswering client is sent close 1001 and then dropped", f"{type(e).__name__}: {e}")
        for s in extra:
            s.settimeout(20)
            try:
                d = s.recv(4096)
                while d:
                    d = s.recv(4096)
                r.ok("a half-handshaken / idle TCP connection is closed at shutdown")
            except ConnectionResetError:
                r.ok("a half-handshaken / idle TCP connection is closed at shutdown (reset)")
            except socket.timeout:
                r.not_ok("a half-handshaken / idle TCP connection is closed at shutdown", "still open after 20 s")
            s.close()


try:
    main()
except Exception as e:  # noqa: BLE001
    r.not_ok("setup", f"{type(e).__name__}: {e}")
    with open(READY, "w") as f:
        f.write("failed\n")
r.finish()
