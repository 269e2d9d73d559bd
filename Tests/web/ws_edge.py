#!/usr/bin/env python3
"""WebSocket edge cases against real nodes (docs/protocol.md, "Web clients"), and a web
session that stops reading being dropped as a slow consumer.

    python3 Tests/web/ws_edge.py --bin .build/debug/tcp_chat

Starts a two-node cluster (B dials A), drives browsers' sessions with the `websockets`
package (PyPI) and, for what that package refuses to send (unmasked frames, invalid
UTF-8, reserved bits), with raw frames on a socket. Prints one line per check and
`ws_edge: ok` at the end; exits 1 at the first failed check. Every wait is bounded.
"""
import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from webnode import TCP, Node, checker

TIMEOUT = 10.0


check = checker("ws_edge")


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def closed_code(ws):
    """Waits for the node's close frame; returns its code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None


class Raw:
    """A WebSocket client made of bytes: frames exactly as the test writes them."""

    def __init__(self, port, extra_headers=""):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()

    def _recv(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("closed")
        return data

    @staticmethod
    def frame(opcode, payload, fin=True, masked=True, rsv=0):
        out = bytes([(0x80 if fin else 0) | rsv | opcode])
        n = len(payload)
        m = 0x80 if masked else 0
        if n < 126:
            out += bytes([m | n])
        elif n < 65536:
            out += bytes([m | 126]) + n.to_bytes(2, "big")
        else:
            out += bytes([m | 127]) + n.to_bytes(8, "big")
        if masked:
            key = os.urandom(4)
            out += key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        else:
            out += payload
        return out

    def send(self, opcode, payload, **kw):
        self.s.sendall(self.frame(opcode, payload, **kw))

    def read_frame(self):
        """(opcode, payload) of the next server frame, or None at EOF."""
        try:
            while len(self.buf) < 2:
                self.buf += self._recv()
            n = self.buf[1] & 0x7F
            at = 2
            if n == 126:
                while len(self.buf) < 4:
                    self.buf += self._recv()
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                while len(self.buf) < 10:
                    self.buf += self._recv()
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            assert self.buf[1] & 0x80 == 0, "server frames are never masked"
            while len(self.buf) < at + n:
                self.buf += self._recv()
            op, payload = self.buf[0] & 0x0F, self.buf[at:at + n]
            self.buf = self.buf[at + n:]
            return op, payload
        except EOFError:
            return None

    def close_code(self):
        """Reads frames up to the node's close; its code."""
        while True:
            f = self.read_frame()
            if f is None:
                return None
            if f[0] == 8:
                return int.from_bytes(f[1][:2], "big") if len(f[1]) >= 2 else None

    def eof(self):
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except OSError:
            return False


def http(port, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(request.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode("utf-8", "replace")


async def main(a, b, slow):
    # The page and the HTTP rules.
    page = http(a.port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n\r\n")
    check(page.startswith("HTTP/1.1 200 OK\r\n") and "<!doctype html>" in page, "GET / serves the page")
    check("Content-Security-Policy: default-src 'none'; script-src 'sha256-" in page
          and "X-Content-Type-Options: nosniff" in page, "the page comes with a strict CSP and nosniff")
    body = page.split("\r\n\r\n", 1)[1]
    check(not re.search(r"\b(src|href)\s*=|https?://|@import|url\(", body),
          "the page refers to no external resource")
    check(http(a.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1.1 404 "), "other paths are 404")
    check(http(a.port, "POST / HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1.1 405 "), "other methods are 405")
    check(http(a.port, "GET / HTTP/1.1\r\nHost: x\r\nX: " + "a" * 9000 + "\r\n\r\n").startswith("HTTP/1.1 431 "),
          "a request head over 8 KiB is 431")
    check(http(a.port, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1.1 426 "),
          "/ws without Upgrade is 426")
    try:
        await websockets.connect(a.ws_url, origin="http://evil.example", open_timeout=TIMEOUT)
        check(False, "a foreign Origin is refused")
    except InvalidStatus as e:
        check(e.response.status_code == 403, "a foreign Origin is refused with 403")
    ws = await websockets.connect(a.ws_url, origin=f"http://127.0.0.1:{a.port}", open_timeout=TIMEOUT)
    await ws.send("sameorigin_o")
    check(await recv(ws) == "200", "the node's own Origin is accepted")
    await ws.close()

    # A session across the cluster: a browser on A, a TCP client on B.
    bob = TCP(b.port, "bob_room")
    check(bob.line() == "200", "TCP bob joins on node B")
    alice = await websockets.connect(a.ws_url, open_timeout=TIMEOUT)
    await alice.send("alice_room")
    check(await recv(alice) == "200", "web alice joins on node A")
    await alice.send("hi from the web")
    check(await recv(alice) == "alice - hi from the web", "alice gets her own message as a text frame")
    check(bob.line() == "alice - hi from the web", "bob on B gets alice's message")
    bob.say("hi from tcp")
    check(bob.line() == "bob - hi from tcp", "bob gets his echo")
    check(await recv(alice) == "bob - hi from tcp", "alice gets bob's message, no trailing newline")

    # Fragmented message (websockets sends an iterable as fragments) and ping.
    await alice.send(["frag", "men", "ted ✓"])
    check(await recv(alice) == "alice - fragmented ✓", "a fragmented message is one message")
    check(bob.line() == "alice - fragmented ✓", "... and reaches the TCP client whole")
    pong = await alice.ping(b"are you there")
    await asyncio.wait_for(pong, TIMEOUT)
    check(True, "ping is answered with pong")

    # Messages the Hub refuses: a notice, the session goes on.
    await alice.send("bad\x07bell")
    check(await recv(alice) == "* message holds control characters; not sent", "control characters get the notice")
    await alice.send("a\nb")
    check(await recv(alice) == "* message holds control characters; not sent", "a newline inside a message is refused")

    # A name held by a TCP client on another node: 403 across the cluster.
    taken = await websockets.connect(a.ws_url, open_timeout=TIMEOUT)
    await taken.send("BOB_other")
    check(await recv(taken) == "403", "a name held by a TCP client on node B gets 403 on node A")
    check(await closed_code(taken) == 1000, "... then a 1000 close")
    bad = await websockets.connect(a.ws_url, open_timeout=TIMEOUT)
    await bad.send("no spaces_allowed here")
    check(await recv(bad) == "400", "a malformed handshake gets 400")

    # Status and metrics count web sessions.
    if a.metrics:
        text = urllib.request.urlopen(f"http://{a.metrics}/metrics", timeout=TIMEOUT).read().decode()
        check(re.search(r"^tcp_chat_web_sessions 1(\.0)?$", text, re.M) is not None,
              "metrics: tcp_chat_web_sessions is 1")
    st = subprocess.run([args.bin, "status", "-a", "127.0.0.1", "-p", str(a.port), "--json"], capture_output=True, text=True, timeout=10)
    check('"web_sessions":1' in st.stdout.replace(" ", ""), "tcp_chat status counts 1 web session")

    # Close codes.
    big = await websockets.connect(a.ws_url, open_timeout=TIMEOUT)
    await big.send("big_elsewhere")
    check(await recv(big) == "200", "big joins")
    await big.send("x" * 5000)
    check(await closed_code(big) == 1009, "a message over --max-message-bytes closes with 1009")
    echo = await websockets.connect(a.ws_url, open_timeout=TIMEOUT)
    await echo.send("echo_elsewhere")
    await recv(echo)
    await echo.close(code=4000, reason="done")
    check(echo.protocol.close_rcvd is not None and echo.protocol.close_rcvd.code == 4000, "a close is echoed with its code")

    raw = Raw(a.port)
    check(raw.head.startswith("HTTP/1.1 101 ") and "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in raw.head,
          "raw upgrade: 101 with the RFC's accept key")
    raw.send(1, b"raw_elsewhere", masked=False)
    check(raw.close_code() == 1002, "an unmasked frame closes with 1002")
    check(raw.eof(), "... and the connection ends")
    raw = Raw(a.port)
    raw.send(1, b"raw_elsewhere")
    check(raw.read_frame() == (1, b"200"), "raw session joins")
    raw.send(1, b"caf\xc3", fin=False)
    raw.send(0, b"\xa9 ok")
    check(raw.read_frame() == (1, "raw - café ok".encode()), "UTF-8 split across fragments is fine")
    raw.send(1, b"ab\xc3", fin=False)
    raw.send(0, b"\x28")
    check(raw.close_code() == 1007, "invalid UTF-8 across fragments closes with 1007")
    raw = Raw(a.port)
    raw.send(2, b"\x01\x02")
    check(raw.close_code() == 1003, "a binary message closes with 1003")
    raw = Raw(a.port)
    raw.send(1, b"x", rsv=0x40)
    check(raw.close_code() == 1002, "reserved bits close with 1002")
    raw = Raw(a.port)
    raw.send(9, b"p" * 126)
    check(raw.close_code() == 1002, "a control frame over 125 bytes closes with 1002")
    raw = Raw(a.port)
    raw.send(9, b"x", fin=False)
    check(raw.close_code() == 1002, "a fragmented control frame closes with 1002")
    raw = Raw(a.port)
    raw.send(0, b"x")
    check(raw.close_code() == 1002, "a continuation without a message closes with 1002")

    # /exit ends the session with a 1000 close; the TCP client sees nothing of it.
    await alice.send("/exit")
    check(await closed_code(alice) == 1000, "/exit closes with 1000")
    bob.say("still here")
    got = bob.line()
    check(got == "bob - still here", f"bob's session is unharmed ({got!r})")
    bob.close()

    # The whole request must arrive within the handshake timeout (1 s on node `slow`).
    s = socket.create_connection(("127.0.0.1", slow.port), timeout=TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    reply = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    check(reply.startswith(b"HTTP/1.1 408 "), "a request head that does not finish in time gets 408")
    # A WebSocket whose user_room handshake never comes.
    raw = Raw(slow.port)
    check(raw.close_code() == 1008, "an upgraded connection without a handshake in time closes with 1008")


async def slow_consumer(node):
    """A web session that stops reading is dropped at --max-queue-bytes; the sender is not."""
    reader = Raw(node.port)
    reader.send(1, b"reader_flood")
    check(reader.read_frame() == (1, b"200"), "a reader that will stop reading joins")
    writer = await websockets.connect(node.ws_url, open_timeout=TIMEOUT, max_size=None)
    await writer.send("writer_flood")
    check(await recv(writer) == "200", "a flooding writer joins")
    text = "w" * 60000
    got = 0
    # One at a time: the writer's own queue never holds more than one message (under the
    # limit), while the reader's grows past it once the kernel's buffers are full.
    for _ in range(300):
        await writer.send(text)
        if await recv(writer) == "writer - " + text:
            got += 1
    check(got == 300, "the writer gets all 300 of its 60 KB messages back")
    # The reader's socket holds what the kernel took before the node gave up; then EOF.
    reader.s.settimeout(TIMEOUT)
    total, eof = 0, False
    try:
        while True:
            chunk = reader.s.recv(1 << 20)
            if not chunk:
                eof = True
                break
            total += len(chunk)
    except ConnectionResetError:
        eof = True
    check(eof and total < 300 * 60000, f"the reader that stopped reading was dropped (got {total} bytes, then EOF)")
    await writer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    args = p.parse_args()
    nodes = []
    try:
        a = Node(args.bin, "--metrics", "127.0.0.1:0")
        nodes.append(a)
        b = Node(args.bin, "--peer", f"127.0.0.1:{a.port}")
        nodes.append(b)
        slow = Node(args.bin, "--handshake-timeout", "1", "--rate-limit", "0", "--max-message-bytes", "65536",
                    "--max-queue-bytes", "65536")
        nodes.append(slow)
        # The cluster is up once a login on A is seen from B: wait for B to know A.
        deadline = time.monotonic() + 10
        while True:
            st = subprocess.run([args.bin, "status", "-a", "127.0.0.1", "-p", str(b.port), "--json"], capture_output=True, text=True, timeout=10)
            if '"cluster_nodes":2' in st.stdout.replace(" ", ""):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the two nodes did not link within 10 s: {st.stdout} {st.stderr}")
            time.sleep(0.1)
        asyncio.run(main(a, b, slow))
        asyncio.run(slow_consumer(slow))
        for n in nodes:
            rc = n.stop()
            check(rc == 0, f"node on port {n.port} stops cleanly on SIGTERM (exit {rc})")
        print("ws_edge: ok", flush=True)
    finally:
        for n in nodes:
            n.stop()
