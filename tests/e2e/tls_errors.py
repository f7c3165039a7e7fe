"""TLS abuse over raw sockets against `duplex echo` with TLS (standard library
only): plaintext on the TLS port and TLS on the plain port, garbage after a
valid ClientHello prefix, truncated and oversized records, random bytes, a
tampered record after the handshake, slow and silent TLS clients. Every
connection must be closed promptly (or by the handshake timeout when the
client stalls), and the server must still serve a normal wss client after
each one.

    /usr/bin/python3 tls_errors.py TLS_PORT PLAIN_PORT CERT_DIR SERVER_LOG TIMEOUT_TLS_PORT

The server runs with --tls-port (ws on PLAIN_PORT, wss on TLS_PORT) and the
default handshake timeout (10 s), so a connection closed within a few
seconds was closed because of what it sent; SERVER_LOG is its log.
TIMEOUT_TLS_PORT is another server's wss port, with --handshake-timeout 1s,
for the clients that stall.
"""
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (  # noqa: E402
    OP_BINARY, OP_TEXT, Closed, Conn, Report, upgrade_request,
)

TLS_PORT, PLAIN_PORT = int(sys.argv[1]), int(sys.argv[2])
CERTS, SERVER_LOG = sys.argv[3], sys.argv[4]
TIMEOUT_PORT = int(sys.argv[5])
CA = os.path.join(CERTS, "ca.pem")
r = Report("tls errors")
rng = random.Random(0xD0F1E5)  # deterministic garbage
PROMPT = 3.0  # seconds: well before the 10 s handshake timeout
TIMEOUT_MIN, TIMEOUT_MAX = 0.8, 5.0  # bounds for --handshake-timeout 1s (TIMEOUT_PORT)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CA)
    return ctx


def rbytes(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def client_hello():
    """A real ClientHello record, as Python's OpenSSL writes it."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[0] == 0x16, hello[:8]
    return hello


class TLSConn(Conn):
    """raw_client's Conn over a verified TLS socket."""

    def __init__(self, port=TLS_PORT, timeout=5.0):
        super().__init__(port, timeout=timeout)
        self.raw = self.sock
        self.sock = client_ctx().wrap_socket(self.raw, server_hostname="localhost")


def wss_echo(name, payload=b"still serving"):
    """A normal client: TLS, upgrade, echo, close."""
    c = TLSConn()
    try:
        c.handshake("/after")
        op, p = c.echo(OP_BINARY, payload, timeout=10)
        c.send_close(1000)
        code, _ = c.expect_close()
        return r.check(name, op == OP_BINARY and p == payload and code == 1000,
                       f"echo op {op} {len(p)} bytes, close {code}")
    finally:
        c.close()


def wait_closed(s, timeout):
    """Seconds until the server closes (EOF or reset), discarding data;
    None if it did not within `timeout`."""
    t0 = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - t0 < timeout:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        if not d:
            return time.monotonic() - t0
    return None


def raw(port=None):
    port = TLS_PORT if port is None else port
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_then_expect_close(name, data, within=PROMPT, shut_wr=False, at_least=0.0, port=None):
    s = raw(port)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: fine
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        t = wait_closed(s, 8.0)
        r.check(name, t is not None and at_least <= t <= within,
                "not closed within 8 s" if t is None else f"closed after {t:.2f} s (want {at_least}..{within} s)")
    finally:
        s.close()


def log_has(text, timeout=3.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(SERVER_LOG, errors="replace") as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- plaintext

def plaintext_on_tls_port():
    c = Conn(TLS_PORT)
    try:
        c.send(upgrade_request(TLS_PORT, "/plain"))
        resp = c.read_response()
        r.check("plain ws:// upgrade on the TLS port -> 400", resp.status == 400, repr(resp))
        r.check("the 400 body says the port expects TLS", b"expects TLS" in resp.body, repr(resp.body))
        t = c.wait_eof()
        r.check("... and the connection is closed", t < PROMPT, f"{t:.2f} s")
    finally:
        c.close()
    r.check("the server logs the plaintext request on the TLS port",
            log_has("plaintext (not TLS) request on the TLS port"), "no log line")
    # Not HTTP and not TLS: closed without an answer.
    s = raw()
    try:
        s.sendall(b"\x00\x01garbage that is neither TLS nor HTTP\r\n\r\n")
        t = wait_closed(s, 8.0)
        r.check("binary junk on the TLS port: closed at once", t is not None and t < PROMPT, f"{t}")
    finally:
        s.close()
    wss_echo("wss still served after plaintext on the TLS port")


def tls_on_plain_port():
    s = raw(PLAIN_PORT)
    try:
        s.sendall(client_hello())
        t = wait_closed(s, 8.0)
        r.check("TLS ClientHello on the plain port: closed at once", t is not None and t < PROMPT, f"{t}")
    finally:
        s.close()
    r.check("the server logs a TLS handshake on the plain ws:// port",
            log_has("TLS handshake on the plain ws:// port"), "no log line")
    try:
        s = raw(PLAIN_PORT)
        client_ctx().wrap_socket(s, server_hostname="localhost")
        r.not_ok("Python's TLS client on the plain port fails", "the handshake succeeded")
    except (ssl.SSLError, OSError) as e:
        r.ok(f"Python's TLS client on the plain port fails ({type(e).__name__})")
    finally:
        s.close()
    # The plain port still works.
    c = Conn(PLAIN_PORT)
    try:
        c.handshake("/plain-after")
        op, p = c.echo(OP_TEXT, b"plain still served")
        r.check("ws:// still served on the plain port", p == b"plain still served", repr(p))
        c.send_close(1000)
        c.expect_close()
    finally:
        c.close()


# ---------------------------------------------------------------- garbage

def garbage():
    hello = client_hello()
    n = len(hello)
    cases = [
        # (name, bytes, shut_wr)
        ("ClientHello prefix (20 bytes) + random bytes", hello[:20] + rbytes(n + 64), False),
        ("ClientHello record header + random body", hello[:5] + rbytes(n), False),
        ("valid ClientHello + a garbage record", hello + b"\x17\x03\x03\x00\x20" + rbytes(32), False),
        ("valid ClientHello + random bytes", hello + rbytes(4096), False),
        ("record length 65535 (over the TLS limit)", b"\x16\x03\x01\xff\xff" + rbytes(20000), False),
        ("alert record before any handshake", b"\x15\x03\x01\x00\x02\x02\x28", False),
        ("SSLv2-style ClientHello", b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + rbytes(37), False),
        ("truncated ClientHello, then EOF", hello[: n // 2], True),
        ("one byte 0x16, then EOF", b"\x16", True),
        ("64 KiB of random bytes starting with 0x16", b"\x16" + rbytes(65535), False),
        ("ClientHello with a corrupted byte in the middle", hello[: n // 2] + bytes([hello[n // 2] ^ 0xFF]) +
         hello[n // 2 + 1:], False),
    ]
    for name, data, shut in cases:
        r.run(name, send_then_expect_close, f"{name}: closed promptly", data, PROMPT, shut)
    for i in range(20):
        data = rbytes(rng.randint(1, 3000))
        if i % 2:
            data = b"\x16\x03" + data  # looks like TLS for two bytes
        # Random bytes may look like the start of a long record: the 1 s
        # handshake timeout ends those.
        r.run(f"random bytes #{i}", send_then_expect_close, f"random bytes #{i} ({len(data)} bytes): closed",
              data, TIMEOUT_MAX, False, 0.0, TIMEOUT_PORT)
    wss_echo("wss still served after garbage")


def stalls():
    hello = client_hello()
    # The client stops part-way: the handshake timeout (1 s) drops it.
    r.run("truncated ClientHello, stalled", send_then_expect_close,
          "truncated ClientHello, then nothing: dropped by the handshake timeout",
          hello[: len(hello) // 2], TIMEOUT_MAX, False, TIMEOUT_MIN, TIMEOUT_PORT)
    r.run("silent TCP client", send_then_expect_close,
          "TCP connect to the TLS port, nothing sent: dropped by the handshake timeout",
          b"", TIMEOUT_MAX, False, TIMEOUT_MIN, TIMEOUT_PORT)

    # TLS handshake done, but no HTTP request: the handshake timeout covers
    # the WebSocket upgrade too.
    def tls_then_silence():
        c = TLSConn(TIMEOUT_PORT)
        try:
            t = wait_closed(c.sock, 8.0)
            r.check("TLS done, no HTTP request: dropped by the handshake timeout",
                    t is not None and TIMEOUT_MIN <= t <= TIMEOUT_MAX, f"{t}")
        finally:
            c.close()
    r.run("TLS then silence", tls_then_silence)


def tampered_record():
    """A complete TLS + WebSocket handshake over MemoryBIOs, then one
    application-data record with a flipped bit: bad_record_mac, closed."""
    s = raw()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    s.settimeout(5)

    def pump_out():
        d = out.read()
        if d:
            s.sendall(d)

    def read_more():
        d = s.recv(65536)
        if not d:
            raise Closed("EOF")
        inc.write(d)

    try:
        while True:
            try:
                obj.do_handshake()
                pump_out()
                break
            except ssl.SSLWantReadError:
                pump_out()
                read_more()
        obj.write(upgrade_request(TLS_PORT, "/tamper"))
        pump_out()
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                buf += obj.read(65536)
            except ssl.SSLWantReadError:
                read_more()
        r.check("hand-driven TLS: upgrade answered 101", buf.startswith(b"HTTP/1.1 101"), repr(buf[:40]))
        obj.write(bytes([0x81, 0x85, 1, 2, 3, 4]) + bytes(a ^ b for a, b in zip(b"hello", b"\x01\x02\x03\x04\x01")))
        rec = bytearray(out.read())
        rec[len(rec) // 2] ^= 0x01  # inside the ciphertext
        s.sendall(bytes(rec))
        t = wait_closed(s, 8.0)
        r.check("a tampered TLS record after the upgrade: connection closed", t is not None and t < PROMPT, f"{t}")
    except Exception as e:  # noqa: BLE001
        r.not_ok("tampered record", f"{type(e).__name__}: {e}")
    finally:
        s.close()
    wss_echo("wss still served after a tampered record")


def slow_and_concurrent():
    """20 clients stuck mid-handshake do not hold up a normal one, and a
    ClientHello sent one byte at a time still completes."""
    hello = client_hello()
    stuck = []
    try:
        for _ in range(20):
            s = raw()
            s.sendall(hello[: len(hello) // 3])
            stuck.append(s)
        t0 = time.monotonic()
        wss_echo("a normal wss client is served while 20 are stuck mid-handshake")
        r.check("... promptly", time.monotonic() - t0 < 4.0, f"{time.monotonic() - t0:.2f} s")
    finally:
        for s in stuck:
            s.close()

    # Byte-at-a-time TLS: every handshake flight is sent one byte per segment.
    s = raw()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        while True:
            try:
                obj.do_handshake()
                d = out.read()
                for i in range(len(d)):
                    s.sendall(d[i:i + 1])
                break
            except ssl.SSLWantReadError:
                d = out.read()
                for i in range(len(d)):  # one byte per send, TCP_NODELAY
                    s.sendall(d[i:i + 1])
                chunk = s.recv(65536)
                if not chunk:
                    raise Closed("EOF during the handshake")
                inc.write(chunk)
        r.ok(f"a ClientHello sent one byte per segment completes ({obj.version()})")
    except Exception as e:  # noqa: BLE001
        r.not_ok("byte-at-a-time TLS handshake", f"{type(e).__name__}: {e}")
    finally:
        s.close()


def slow_reader_mixed_sizes():
    """Echoes of many messages of mixed sizes to a client that reads slowly
    through a small receive buffer: the server's TLS writes stall and are
    retried (partial SSL_write, coalesced small frames) and every byte must
    still arrive intact and in order."""
    c = Conn(TLS_PORT, timeout=20, rcvbuf=4096, connect=False)
    c.sock.connect(("127.0.0.1", TLS_PORT))
    c.sock = client_ctx().wrap_socket(c.sock, server_hostname="localhost")
    try:
        c.handshake("/slow")
        sizes = [1, 2, 125, 126, 127, 1000, 16383, 16384, 16385, 40000, 65535, 65536, 100000]
        msgs = [bytes([(i * 31 + j) & 255 for j in range(sizes[i % len(sizes)])]) for i in range(120)]
        for m in msgs:
            c.send_frame(OP_BINARY, m)
        time.sleep(0.5)  # let the server fill our small window and stall
        bad = []
        for i, m in enumerate(msgs):
            op, p = c.recv_message(20, pong_pings=True)
            if p != m:
                bad.append(f"#{i}: {len(p)} bytes, want {len(m)}")
            if i % 10 == 0:
                time.sleep(0.02)
        r.check(f"slow TLS reader: {len(msgs)} echoes of mixed sizes ({sum(map(len, msgs))} bytes) intact, in order",
                not bad, "; ".join(bad[:5]))
        c.send_close(1000)
        code, _ = c.expect_close(10)
        r.check("slow TLS reader: clean close", code == 1000, f"{code}")
    finally:
        c.close()


def many_aborted_handshakes():
    """200 clients that open TLS and reset mid-way, from several threads."""
    hello = client_hello()

    def worker(k):
        for i in range(50):
            try:
                s = raw()
                if i % 3 == 0:
                    s.sendall(hello)
                elif i % 3 == 1:
                    s.sendall(hello[: 7 + i])
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                s.close()
            except OSError:
                pass

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wss_echo("wss still served after 200 handshakes reset mid-way")


for fn in (plaintext_on_tls_port, tls_on_plain_port, garbage, stalls, tampered_record, slow_and_concurrent,
           slow_reader_mixed_sizes, many_aborted_handshakes):
    r.run(fn.__name__, fn)
r.finish()
