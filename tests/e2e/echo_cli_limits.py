"""duplex echo --threads 2 --max-connections 2: the limit is for the process,
not per loop. Two WebSockets are held open; then every further attempt gets
503, whichever loop the kernel hands it to; once one leaves, a new client
gets in.

    python3 echo_cli_limits.py PORT
"""
import sys
import time

from raw_client import Conn, Report, open_ws, upgrade_request

PORT = int(sys.argv[1])
r = Report("echo --threads 2 --max-connections 2")


def attempt(path):
    c = Conn(PORT)
    c.send(upgrade_request(PORT, path))
    resp = c.read_response()
    return c, resp.status


def main():
    a = open_ws(PORT, "/a")
    b = open_ws(PORT, "/b")
    # With SO_REUSEPORT each attempt lands on one of the two loops; with a
    # per-loop limit of 2 some of eight attempts would get in.
    statuses = []
    for i in range(8):
        c, st = attempt(f"/extra{i}")
        statuses.append(st)
        c.close()
    r.check("every connection past the 2 held ones gets 503", statuses == [503] * 8, f"got {statuses}")
    b.send_close(1000)
    b.expect_close()
    b.wait_eof()
    b.close()
    deadline = time.monotonic() + 3
    while True:
        c, st = attempt("/again")
        if st == 101 or time.monotonic() > deadline:
            break
        c.close()
        time.sleep(0.1)
    r.check("after one leaves, a new client gets in", st == 101, f"got {st}")
    c2, st2 = attempt("/third")
    r.check("... and the limit holds again", st2 == 503, f"got {st2}")
    c2.close()
    c.close()
    a.close()


r.run("limits", main)
r.finish()
