#!/usr/bin/env python3
"""Chaos test of a tcp_chat cluster (SPEC.md §4.2), seen from the clients' side.

    python3 Tests/chaos/chaos.py --bin .build/debug/tcp_chat --seed 7 --duration 100

Runs N nodes on loopback, each behind a fault-injecting TCP proxy for its peer traffic,
drives continuous traffic from many clients in several rooms, applies a seeded schedule of
faults (kill -9 and restart, SIGSTOP/SIGCONT, cut links, partitions, login races), and
checks the guarantees of SPEC.md §4.2 throughout. The exact rules are in docs/chaos.md.
Exit 0 when every invariant held; 1 with a report (seed, fault log, violations, logs) when
one did not; 2 when the harness itself could not run (binary missing, ports, ...).

Standard library only. Linux only (process groups, PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import atexit
import bisect
import ctypes
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

now = time.monotonic  # CLOCK_MONOTONIC: the same clock in the driver and the proxy process

NAME_LOST = b"* your name was granted to an earlier login elsewhere in the cluster; disconnecting"

# --------------------------------------------------------------------------------------
# Child processes: own process group, killed with us (PR_SET_PDEATHSIG), killed at exit.

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _child_setup():
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


_GROUPS: set[int] = set()  # process group ids of every child still possibly alive


def _kill_groups():
    for pgid in list(_GROUPS):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        _GROUPS.discard(pgid)


atexit.register(_kill_groups)


def _on_signal(signum, _frame):
    _kill_groups()
    raise SystemExit(128 + signum)


# ======================================================================================
# The fault-injecting proxy (runs as a child process: `chaos.py --_proxy`).
#
# One listener P_j per node j; node j advertises P_j, so every peer connection to j passes
# through P_j. The first line a dialer sends is `TCPCHAT-PEER/3 HELLO <id> <advertise> ...`
# and its advertise address is the dialer's own proxy port: that names the dialing node i.
# `cut i j` makes P_j and P_i drop (reset) or silently swallow (blackhole) the connections
# between i and j and refuse new ones until `heal`. Events (link established / closed) go
# to stdout as JSON lines with CLOCK_MONOTONIC times; commands come as JSON lines on stdin.


class PConn:
    def __init__(self, srv, cid, dst, down):
        self.srv, self.id, self.dst, self.down = srv, cid, dst, down
        self.src = None
        self.up = None
        self.state = "hello"  # hello -> connecting -> open -> closed; or blackhole
        self.buf = bytearray()
        self.upbuf = bytearray()
        self.established = False
        self.reported_down = False
        self.dialer_id = self.acceptor_id = None
        self.errors: list[str] = []
        self.down_closed = self.up_closed = False

    # -- data
    def trace(self, side, data):
        tr = self.srv.tracer
        if tr is None or self.src is None:
            return
        key = (self.id, side)
        buf = self.srv.trace_rest.pop(key, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if rest:
            self.srv.trace_rest[key] = rest
        t = now()
        arrow = f"{self.src}>{self.dst}" if side == "src" else f"{self.dst}>{self.src}"
        for line in lines:
            tr.write(f"{t:.6f} c{self.id} {arrow} ".encode() + line + b"\n")

    def from_down(self, data):
        st = self.state
        if st == "open":
            self.up.write(data)
            if self.srv.tracer is not None:
                self.trace("src", data)
            if b"ERROR " in data:
                self.scan_error(data, "src")
        elif st == "hello":
            self.buf += data
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > 8192:
                    self.kill("proxy")
                return
            parts = bytes(self.buf[:i]).split(b" ")
            if len(parts) >= 4 and parts[0].startswith(b"TCPCHAT-PEER/") and parts[1] == b"HELLO":
                self.dialer_id = parts[2].decode("ascii", "replace")
                try:
                    self.src = self.srv.port_node.get(int(parts[3].rsplit(b":", 1)[1]))
                except (ValueError, IndexError):
                    self.src = None
            mode = self.srv.cut_mode(self.src, self.dst)
            if mode == "reset":
                self.srv.refused += 1
                self.kill("proxy")
            elif mode == "blackhole":
                self.srv.refused += 1
                self.state = "blackhole"
                self.buf.clear()
            else:
                self.state = "connecting"
                asyncio.get_running_loop().create_task(self.connect())
        elif st == "connecting":
            self.buf += data
        # blackhole, closed: swallowed

    def from_up(self, data):
        if self.state != "open":
            return
        if self.upbuf is not None:
            self.upbuf += data
            i = self.upbuf.find(b"\n")
            if i >= 0:
                parts = bytes(self.upbuf[:i]).split(b" ")
                self.upbuf = None
                if len(parts) >= 3 and parts[0].startswith(b"TCPCHAT-PEER/") and parts[1] == b"HELLO" \
                        and self.src is not None:
                    self.established = True
                    self.acceptor_id = parts[2].decode("ascii", "replace")
                    self.srv.emit(ev="up", id=self.id, src=self.src, dst=self.dst,
                                  dialer=self.dialer_id, acceptor=self.acceptor_id)
            elif len(self.upbuf) > 8192:
                self.upbuf = None
        self.down.write(data)
        if self.srv.tracer is not None:
            self.trace("dst", data)
        if b"ERROR " in data:
            self.scan_error(data, "dst")

    def scan_error(self, data, side):
        for m in re.finditer(rb"(?:^|\n)(ERROR [^\n]{0,200})", data):
            line = m.group(1).decode("utf-8", "replace")
            self.errors.append(line)
            self.srv.emit(ev="error", id=self.id, src=self.src, dst=self.dst, side=side, line=line)

    async def connect(self):
        port = self.srv.upstream.get(self.dst)
        if port is None:
            self.kill("proxy")
            return
        loop = asyncio.get_running_loop()
        try:
            tr, _ = await loop.create_connection(lambda: UpProto(self), "127.0.0.1", port, ssl=self.srv.tls[1])
        except OSError:
            self.kill("proxy")
            return
        if self.state != "connecting":
            tr.abort()
            return
        self.state = "open"
        tr.write(bytes(self.buf))
        if self.srv.tracer is not None:
            self.trace("src", bytes(self.buf))
        self.buf.clear()

    # -- ends
    def side_closed(self, side):
        if side == "src":
            self.down_closed = True
        else:
            self.up_closed = True
        if self.state == "closed":
            return
        if self.state == "blackhole":
            # A cut swallows the FIN too: the other end learns nothing until it times out.
            if (self.down_closed or self.down is None) and (self.up_closed or self.up is None):
                self.finish()
            return
        self.report_down(side)
        self.state = "closed"
        for tr in (self.down, self.up):
            if tr is not None:
                tr.close()  # flushes what is queued, then FIN: the close crosses the proxy
        self.finish()

    def report_down(self, by):
        if self.established and not self.reported_down:
            self.reported_down = True
            self.srv.emit(ev="down", id=self.id, src=self.src, dst=self.dst, by=by,
                          errors=self.errors[-3:])

    def kill(self, by):
        self.report_down(by)
        self.state = "closed"
        for tr in (self.down, self.up):
            if tr is not None:
                tr.abort()
        self.finish()

    def blackhole(self):
        self.report_down("cut")
        if self.state == "closed":
            return
        self.state = "blackhole"
        for tr in (self.down, self.up):
            if tr is not None and not tr.is_closing():
                tr.resume_reading()

    def finish(self):
        self.srv.conns.pop(self.id, None)


class LegProto(asyncio.Protocol):
    """One leg of a proxied connection: its end and its flow control go to the PConn.
    `side` names the leg in side_closed; `far()` is the other leg's transport (None while
    the upstream leg is still connecting)."""
    side = None

    def far(self):
        raise NotImplementedError

    def eof_received(self):
        self.c.side_closed(self.side)
        return False

    def connection_lost(self, exc):
        self.c.side_closed(self.side)

    # Backpressure: while this leg cannot take more, the far leg stops reading.
    def pause_writing(self):
        far = self.far()
        if far is not None and self.c.state == "open" and not far.is_closing():
            far.pause_reading()

    def resume_writing(self):
        far = self.far()
        if far is not None and self.c.state == "open" and not far.is_closing():
            far.resume_reading()


class DownProto(LegProto):
    """The dialer's leg (accepted by the proxy)."""
    side = "src"

    def __init__(self, srv, dst):
        self.srv, self.dst, self.c = srv, dst, None

    def far(self):
        return self.c.up

    def connection_made(self, tr):
        self.srv.next_id += 1
        self.c = PConn(self.srv, self.srv.next_id, self.dst, tr)
        self.srv.conns[self.c.id] = self.c

    def data_received(self, data):
        self.c.from_down(data)


class UpProto(LegProto):
    """The node's leg (dialed by the proxy)."""
    side = "dst"

    def __init__(self, c):
        self.c = c

    def far(self):
        return self.c.down

    def connection_made(self, tr):
        self.c.up = tr

    def data_received(self, data):
        self.c.from_up(data)


def proxy_tls_contexts(tls_dir):
    """With --tls the proxy terminates TLS on both legs (dialer -> proxy -> node) with a
    certificate of the cluster CA, so it still reads the HELLO that names the dialer. Both
    legs are real TLS peer links to the nodes; a cluster secret is not used in --tls runs
    (the proofs are bound to each TLS session, so relayed proofs would rightly fail)."""
    cert, key, ca = (os.path.join(tls_dir, f) for f in ("node.pem", "node.key", "ca.pem"))
    down = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    down.load_cert_chain(cert, key)
    down.verify_mode = ssl.CERT_REQUIRED
    down.load_verify_locations(ca)
    up = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    up.check_hostname = False
    up.verify_mode = ssl.CERT_REQUIRED
    up.load_verify_locations(ca)
    up.load_cert_chain(cert, key)
    return down, up


def make_tls_files(tls_dir):
    """A cluster CA and one node certificate (127.0.0.1, both key usages), as docs/tls.md."""
    os.makedirs(tls_dir, exist_ok=True)
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    j = lambda f: os.path.join(tls_dir, f)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", j("ca.key"),
        "-out", j("ca.pem"), "-days", "2", "-subj", "/CN=chaos cluster CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", j("node.key"))
    run("req", "-new", "-key", j("node.key"), "-out", j("node.csr"), "-subj", "/CN=127.0.0.1")
    with open(j("node.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", j("node.csr"), "-CA", j("ca.pem"), "-CAkey", j("ca.key"), "-set_serial", "1",
        "-days", "2", "-extfile", j("node.ext"), "-out", j("node.pem"))


class ProxyServer:
    def __init__(self, tls_dir=None):
        self.tls = proxy_tls_contexts(tls_dir) if tls_dir else (None, None)
        self.port_node: dict[int, int] = {}
        self.upstream: dict[int, int] = {}
        self.cuts: dict[frozenset, str] = {}
        self.conns: dict[int, PConn] = {}
        self.next_id = 0
        self.refused = 0
        self.servers = []
        self.tracer = None  # file: every line relayed, when the driver asks for a trace
        self.trace_rest: dict = {}

    def emit(self, **kw):
        kw["t"] = now()
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

    def cut_mode(self, src, dst):
        if src is None:
            return None
        return self.cuts.get(frozenset((src, dst)))

    async def command(self, msg):
        op = msg["op"]
        if op == "listen":
            node, port = msg["node"], msg["port"]
            self.port_node[port] = node
            self.upstream[node] = msg["upstream"]
            srv = await asyncio.get_running_loop().create_server(
                lambda: DownProto(self, node), "127.0.0.1", port, reuse_address=True, ssl=self.tls[0])
            self.servers.append(srv)
        elif op == "cut":
            keys = {frozenset(p) for p in msg["pairs"]}
            for k in keys:
                self.cuts[k] = msg["mode"]
            for c in list(self.conns.values()):
                if c.src is not None and frozenset((c.src, c.dst)) in keys:
                    if msg["mode"] == "reset":
                        c.kill("cut")
                    else:
                        c.blackhole()
        elif op == "heal":
            keys = {frozenset(p) for p in msg["pairs"]}
            for k in keys:
                self.cuts.pop(k, None)
            for c in list(self.conns.values()):
                if c.state == "blackhole" and c.src is not None and frozenset((c.src, c.dst)) in keys:
                    c.kill("heal")
        elif op == "trace":
            self.tracer = open(msg["path"], "wb", buffering=1 << 20)
        elif op == "quit":
            raise SystemExit(0)
        self.emit(ack=msg["seq"], refused=self.refused)
        if self.tracer is not None:
            self.tracer.flush()


async def proxy_main(tls_dir=None):
    srv = ProxyServer(tls_dir)
    loop = asyncio.get_running_loop()

    def flush():
        if srv.tracer is not None:
            srv.tracer.flush()
        loop.call_later(0.2, flush)
    flush()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return  # the driver is gone
        await srv.command(json.loads(line))


# ======================================================================================
# The driver.


def free_ports(count: int) -> list[int]:
    """Ports below the ephemeral range (a restarted node must get its port back: an outgoing
    connection could otherwise be holding it as its local port)."""
    lo_eph = 32768
    try:
        lo_eph = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    hi = max(2000, min(lo_eph, 32768)) - 1
    lo = max(1024, hi - 12000)
    rnd = random.Random(os.urandom(8))  # not the seed: ports do not affect a replay
    out: list[int] = []
    tried = 0
    while len(out) < count:
        tried += 1
        if tried > 5000:
            raise RuntimeError("no free ports")
        p = rnd.randrange(lo, hi)
        if p in out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        out.append(p)
    return out


class Sess:
    """One client connection and login, and everything it saw."""

    __slots__ = ("drv", "kind", "node", "inc", "name", "room", "name_b", "room_b", "key", "reply",
                 "t_send", "t_reply", "t_end", "end_reason", "sent", "got", "tr", "reply_fut",
                 "closed_fut", "kicked", "t_kicked", "notices", "label", "open", "lines", "fresh")

    def __init__(self, drv, kind, node, inc, name, room, fresh):
        self.drv, self.kind, self.node, self.inc = drv, kind, node, inc
        self.name, self.room = name, room
        self.name_b, self.room_b = name.encode(), room.encode()
        self.key = name.lower()
        self.fresh = fresh  # the name was never used before in this run
        self.reply = None  # "200", "403", other text, "eof", "connect-failed", "timeout"
        self.t_send = self.t_reply = self.t_end = None
        self.end_reason = None
        self.sent = array.array("d")  # send time of message seq (index seq-1)
        self.got: dict[bytes, list] = {}  # sender -> [last seq, [[lo, hi], ...]]
        self.tr = None
        loop = asyncio.get_running_loop()
        self.reply_fut = loop.create_future()
        self.closed_fut = loop.create_future()
        self.kicked = False
        self.t_kicked = None
        self.notices: list[tuple[float, str]] = []
        self.label = f"{name}@node{node}"
        self.open = False
        self.lines = 0

    # -- events from the protocol
    def on_reply(self, line: bytes):
        t = now()
        self.reply = line.decode("utf-8", "replace")
        self.t_reply = t
        if self.reply == "200":
            self.open = True
        if not self.reply_fut.done():
            self.reply_fut.set_result(self.reply)

    def on_closed(self):
        t = now()
        self.open = False
        if self.reply is None:
            self.reply = "eof"
            self.t_reply = t
            if not self.reply_fut.done():
                self.reply_fut.set_result("eof")
        if self.t_end is None:
            self.t_end = t
            self.end_reason = "eof"
        if not self.closed_fut.done():
            self.closed_fut.set_result(None)

    def on_line(self, line: bytes):
        self.lines += 1
        if line[:2] == b"* ":
            t = now()
            text = line.decode("utf-8", "replace")
            self.notices.append((t, text))
            if line == NAME_LOST:
                self.kicked = True
                self.t_kicked = t
                if self.t_end is None:
                    self.t_end = t
                    self.end_reason = "kicked"
                self.open = False
            else:
                self.drv.violate("notice", f"{self.label} got an unexpected notice {text!r} at "
                                 f"{self.drv.rel(t)}")
            return
        if line == b"/exit":
            self.notices.append((now(), "/exit"))
            return
        user, sep, text = line.partition(b" - ")
        parts = text.split(b":")
        if not sep or len(parts) != 3 or parts[0] != user or parts[2] != self.room_b:
            self.drv.violate("corrupt", f"{self.label} (room {self.room}) got a corrupt or misrouted "
                             f"line {line[:200]!r} at {self.drv.rel(now())}")
            return
        try:
            seq = int(parts[1])
        except ValueError:
            self.drv.violate("corrupt", f"{self.label} got a corrupt line {line[:200]!r}")
            return
        st = self.got.get(user)
        if st is None:
            self.got[user] = [seq, [[seq, seq]]]
            return
        last = st[0]
        if seq > last:
            if seq == last + 1:
                st[1][-1][1] = seq
            else:
                st[1].append([seq, seq])
            st[0] = seq
            return
        # seq <= last: a copy of something already delivered, or out of order.
        ranges = st[1]
        i = bisect.bisect_right(ranges, [seq, float("inf")]) - 1
        mid = f"{user.decode()}:{seq}:{self.room}"
        if i >= 0 and ranges[i][0] <= seq <= ranges[i][1]:
            self.drv.violate("duplicate", f"{self.label} received {mid} twice (at {self.drv.rel(now())}; "
                             f"last seq from that sender was {last})")
        else:
            self.drv.violate("order", f"{self.label} received {mid} after {user.decode()}:{last} "
                             f"(at {self.drv.rel(now())})")
            ranges.insert(i + 1, [seq, seq])

    # -- actions
    def send_next(self):
        seq = len(self.sent) + 1
        self.sent.append(now())
        self.tr.write(b"%s:%d:%s\n" % (self.name_b, seq, self.room_b))

    def leave(self):
        """Ends the session with /exit (the name is released when the node reads it)."""
        if self.tr is not None and self.open:
            self.t_end = now()
            self.end_reason = "exit"
            self.open = False
            self.tr.write(b"/exit\n")
            asyncio.get_running_loop().call_later(2.0, self.abort)

    def abort(self):
        if self.tr is not None and not self.tr.is_closing():
            if self.t_end is None:
                self.t_end = now()
                self.end_reason = "closed"
            self.open = False
            self.tr.abort()


class ClientProto(asyncio.Protocol):
    def __init__(self, s: Sess):
        self.s = s
        self.buf = bytearray()

    def connection_made(self, tr):
        s = self.s
        s.tr = tr
        s.t_send = now()
        tr.write(s.name_b + b"_" + s.room_b + b"\n")

    def data_received(self, data):
        self.buf += data
        i = self.buf.rfind(b"\n")
        if i < 0:
            return
        chunk = bytes(self.buf[:i])
        del self.buf[: i + 1]
        s = self.s
        for line in chunk.split(b"\n"):
            if s.reply is None:
                s.on_reply(line)
            else:
                s.on_line(line)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.s.on_closed()


class NodeProc:
    def __init__(self, drv, idx, port, pport):
        self.drv, self.idx, self.port, self.pport = drv, idx, port, pport
        self.inc = -1
        self.proc: subprocess.Popen | None = None
        self.state = "down"  # down | up | stopped
        self.ids: list[str] = []  # node id of each incarnation
        self.logs: list[str] = []
        self.killed_by_us = False
        self.exits: list[tuple[int, int, float]] = []  # (incarnation, status, time) of unexpected exits

    def argv(self):
        d = self.drv
        a = [d.args.bin, "server", "-a", "127.0.0.1", "-p", str(self.port),
             "--advertise", f"127.0.0.1:{self.pport}"]
        for j in d.peers_of[self.idx]:
            a += ["--peer", f"127.0.0.1:{d.nodes[j].pport}"]
        a += ["--rate-limit", "0", "--heartbeat-ms", str(d.args.heartbeat_ms),
              "--peer-timeout-ms", str(d.args.peer_timeout_ms),
              "--max-queue-bytes", str(16 * 1024 * 1024), "--log-level", "info"]
        if d.tls_dir:
            a += ["--tls-cert", os.path.join(d.tls_dir, "node.pem"), "--tls-key", os.path.join(d.tls_dir, "node.key"),
                  "--tls-ca", os.path.join(d.tls_dir, "ca.pem")]
        return a

    def spawn(self):
        self.inc += 1
        base = os.path.join(self.drv.dir, f"node{self.idx}.{self.inc}")
        self.logs.append(base + ".log")
        out = open(base + ".out", "wb")
        err = open(base + ".log", "wb")
        self.killed_by_us = False
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     preexec_fn=_child_setup, start_new_session=True)
        out.close()
        err.close()
        _GROUPS.add(self.proc.pid)

    async def start(self, timeout=15.0) -> bool:
        """Starts an incarnation and waits for `listening on`; retries a busy port a few times."""
        for attempt in range(6):
            self.spawn()
            out = os.path.join(self.drv.dir, f"node{self.idx}.{self.inc}.out")
            deadline = now() + timeout
            while now() < deadline:
                try:
                    text = open(out).read()
                except OSError:
                    text = ""
                if "listening on" in text:
                    self.ids.append(self.read_id())
                    return True
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            self.kill_proc()
            self.ids.append("-")
            await asyncio.sleep(0.5)
        return False

    def read_id(self) -> str:
        for _ in range(50):
            try:
                m = re.search(r"node=([0-9a-f]{16})", open(self.logs[-1]).read())
            except OSError:
                m = None
            if m:
                return m.group(1)
            time.sleep(0.01)
        return "?"

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill_proc(self):
        if self.proc is None:
            return
        self.killed_by_us = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _GROUPS.discard(self.proc.pid)

    def check_alive(self):
        """Records an exit we did not cause (a crash)."""
        if self.proc is not None and not self.killed_by_us and self.state != "down":
            rc = self.proc.poll()
            if rc is not None:
                self.exits.append((self.inc, rc, now()))
                self.killed_by_us = True  # report once
                return False
        return True


class Timeline:
    """What happened when: node states, link states seen by the proxy, and fault events.
    Every change is an event touching some nodes; the rules of docs/chaos.md are computed
    from these."""

    def __init__(self, n):
        self.n = n
        self.events: list[tuple[float, frozenset, str]] = []
        self.st_t = {i: [0.0] for i in range(n)}
        self.st_v = {i: ["down"] for i in range(n)}
        self.lk_t: dict[tuple, list[float]] = {}
        self.lk_v: dict[tuple, list[int]] = {}
        self.lk_count: dict[tuple, int] = {}
        self.conn_pair: dict[int, tuple] = {}
        self.conn_info: dict[int, dict] = {}
        self.link_log: list[tuple] = []  # (t, "up"/"down", pair, conn id, by, errors)
        self.faults: list[tuple[float, set, str]] = []  # the driver's own actions
        self._cache = {}

    def event(self, t, nodes, what):
        self.events.append((t, frozenset(nodes), what))

    def node_state(self, i, t, st, what):
        self.st_t[i].append(t)
        self.st_v[i].append(st)
        self.event(t, {i}, what)

    def proxy_up(self, ev):
        pair = tuple(sorted((ev["src"], ev["dst"])))
        self.conn_pair[ev["id"]] = pair
        self.conn_info[ev["id"]] = ev
        c = self.lk_count.get(pair, 0) + 1
        self._link(pair, ev["t"], c)
        self.link_log.append((ev["t"], "up", pair, ev["id"], "", []))

    def proxy_down(self, ev):
        pair = self.conn_pair.pop(ev["id"], None)
        if pair is None:
            return
        c = self.lk_count.get(pair, 0) - 1
        self._link(pair, ev["t"], c)
        self.link_log.append((ev["t"], "down", pair, ev["id"], ev.get("by", ""), ev.get("errors", [])))

    def _link(self, pair, t, c):
        self.lk_count[pair] = c
        self.lk_t.setdefault(pair, [0.0]).append(t)
        self.lk_v.setdefault(pair, [0]).append(c)
        self.event(t, set(pair), f"link {pair[0]}-{pair[1]} {'+' if c else '-'}")

    def seal(self, t_end):
        """Freezes the timeline for the checks (proxy events may have arrived out of order)."""
        self.t_end = t_end
        self.events.sort(key=lambda e: e[0])
        for pair in self.lk_t:
            z = sorted(zip(self.lk_t[pair], self.lk_v[pair]), key=lambda x: x[0])
            self.lk_t[pair] = [a for a, _ in z]
            self.lk_v[pair] = [b for _, b in z]
        self.ev_times = [e[0] for e in self.events]
        self.ev_by_node = {i: [e[0] for e in self.events if i in e[1]] for i in range(self.n)}

    def running(self, i, t):
        k = bisect.bisect_right(self.st_t[i], t) - 1
        return self.st_v[i][k] == "up"

    def state(self, i, t):
        return self.st_v[i][bisect.bisect_right(self.st_t[i], t) - 1]

    def link_up(self, a, b, t):
        pair = (min(a, b), max(a, b))
        ts = self.lk_t.get(pair)
        if not ts:
            return False
        return self.lk_v[pair][bisect.bisect_right(ts, t) - 1] > 0

    def connected(self, a, b, t):
        if not (self.running(a, t) and self.running(b, t)):
            return False
        if a == b:
            return True
        seen = {a}
        todo = [a]
        while todo:
            x = todo.pop()
            for y in range(self.n):
                if y not in seen and self.running(y, t) and self.link_up(x, y, t):
                    if y == b:
                        return True
                    seen.add(y)
                    todo.append(y)
        return False

    def events_near(self, nodes, t0, t1):
        """Events touching any of `nodes` (None: any node) in [t0, t1]."""
        out = []
        i = bisect.bisect_left(self.ev_times, t0)
        while i < len(self.events) and self.events[i][0] <= t1:
            e = self.events[i]
            if nodes is None or e[1] & set(nodes):
                out.append(e)
            i += 1
        return out

    def quiet(self, nodes, t0, t1):
        return not self.events_near(nodes, t0, t1)

    def required_intervals(self, a, b, Q):
        """Send times at which a message from a member on node a must reach a member on node b
        (docs/chaos.md, rule L)."""
        key = ("req", a, b, Q)
        if key in self._cache:
            return self._cache[key]
        out = []
        ev = sorted(set(self.ev_by_node[a]) | set(self.ev_by_node[b]))
        bounds = [0.0] + ev + [self.t_end]
        for s, e in zip(bounds, bounds[1:]):
            if e - s <= 2 * Q:
                continue
            m = (s + e) / 2
            if a == b:
                ok = self.running(a, m)
            else:
                ok = self.running(a, m) and self.running(b, m) and self.link_up(a, b, m)
            if ok:
                out.append((s + Q, e - Q, "direct"))
        if a != b:
            bounds = [0.0] + self.ev_times + [self.t_end]
            for s, e in zip(bounds, bounds[1:]):
                if e - s <= 2 * Q:
                    continue
                m = (s + e) / 2
                if self.running(a, m) and self.running(b, m) and not self.link_up(a, b, m) \
                        and self.connected(a, b, m):
                    out.append((s + Q, e - Q, "indirect"))
        out.sort()
        self._cache[key] = out
        return out

    def connected_intervals(self, a, b):
        key = ("conn", a, b)
        if key in self._cache:
            return self._cache[key]
        out = []
        bounds = [0.0] + self.ev_times + [self.t_end]
        for s, e in zip(bounds, bounds[1:]):
            if e <= s:
                continue
            if self.connected(a, b, (s + e) / 2):
                if out and abs(out[-1][1] - s) < 1e-9:
                    out[-1] = (out[-1][0], e)
                else:
                    out.append((s, e))
        self._cache[key] = out
        return out

    def connected_throughout(self, a, b, t0, t1):
        for s, e in self.connected_intervals(a, b):
            if s <= t0 and e >= t1:
                return True
        return False

    def disconnected_throughout(self, a, b, t0, t1):
        for s, e in self.connected_intervals(a, b):
            if s < t1 and e > t0:
                return False
        return True

    def running_throughout(self, i, t0, t1):
        """Up (not killed, not stopped) at t0 and no state change until t1."""
        if not self.running(i, t0):
            return False
        k = bisect.bisect_right(self.st_t[i], t0)
        return k >= len(self.st_t[i]) or self.st_t[i][k] > t1


class Fault:
    """One entry of the seeded schedule. `t` is an offset from the start of the chaos phase."""

    def __init__(self, idx, kind, t, **kw):
        self.idx, self.kind, self.t = idx, kind, t
        self.dur = kw.get("dur", 0.0)
        self.nodes: list[int] = kw.get("nodes", [])
        self.groups = kw.get("groups")
        self.mode = kw.get("mode")
        self.rseed = kw.get("rseed", 0)
        self.t_start = self.t_restore = None

    def describe(self):
        if self.kind == "kill":
            return f"kill -9 node{self.nodes[0]}, restart after {self.dur:.1f}s"
        if self.kind == "stall":
            return f"SIGSTOP node{self.nodes[0]} for {self.dur:.1f}s"
        if self.kind == "cut":
            return f"cut link {self.nodes[0]}-{self.nodes[1]} ({self.mode}) for {self.dur:.1f}s"
        if self.kind == "partition":
            a, b = self.groups
            return f"partition {a} | {b} ({self.mode}) for {self.dur:.1f}s"
        if self.kind == "race":
            return f"login race on nodes {self.nodes[0]} and {self.nodes[1]}"
        return self.kind


def make_schedule(seed: int, n: int, span: float, args) -> list[Fault]:
    """The fault schedule: a pure function of the seed and the options (so a seed replays)."""
    rng = random.Random(f"{seed}/schedule")
    faults: list[Fault] = []
    active: list[tuple[float, set, str]] = []  # (busy until, nodes, kind)
    t = 1.0
    while True:
        t += rng.uniform(args.min_gap, args.max_gap)
        kind = rng.choices(["kill", "stall", "cut", "partition", "race", "quiet"],
                           [3, 3, 3, 1.5, 3, 1])[0]
        dur = {"kill": rng.uniform(1.0, 3.0), "stall": rng.uniform(2.0, 4.0),
               "cut": rng.uniform(2.0, 8.0), "partition": rng.uniform(3.0, 6.0)}.get(kind, 0.0)
        rseed = rng.getrandbits(32)
        if t + dur + 2.0 > span:
            break
        if args.max_faults and sum(f.kind != "race" for f in faults) >= args.max_faults and kind != "race":
            continue
        active = [a for a in active if a[0] > t]
        if kind == "quiet":
            t += rng.uniform(4.0, 8.0)
            continue
        if kind == "race":
            faults.append(Fault(len(faults), "race", t, nodes=rng.sample(range(n), 2), rseed=rseed))
            continue
        if len(active) >= args.max_concurrent or any(a[2] == "partition" for a in active):
            continue
        if kind == "partition" and active:
            continue
        busy = set().union(*(a[1] for a in active)) if active else set()
        free = [i for i in range(n) if i not in busy]
        mode = rng.choice(["reset", "blackhole"])
        if kind in ("kill", "stall"):
            if not free:
                continue
            nodes = [rng.choice(free)]
            f = Fault(len(faults), kind, t, dur=dur, nodes=nodes, rseed=rseed)
        elif kind == "cut":
            if len(free) < 2:
                continue
            nodes = sorted(rng.sample(free, 2))
            f = Fault(len(faults), kind, t, dur=dur, nodes=nodes, mode=mode, rseed=rseed)
        else:
            k = rng.randint(1, n // 2)
            side = sorted(rng.sample(range(n), k))
            other = [i for i in range(n) if i not in side]
            nodes = list(range(n))
            f = Fault(len(faults), kind, t, dur=dur, nodes=nodes, groups=(side, other), mode=mode, rseed=rseed)
        faults.append(f)
        # A killed node is busy until it is back and relinked; the others until a little after.
        active.append((t + dur + (2.5 if kind == "kill" else 1.5), set(nodes), kind))
    return faults


class Driver:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.n = args.nodes
        self.Q = args.quiet_window
        self.R = args.merge_window
        self.pt = args.peer_timeout_ms / 1000.0
        self.margin = args.failure_margin
        self.rooms = [f"rm{i}" for i in range(args.rooms)]
        self.tl = Timeline(self.n)
        self.sessions: list[Sess] = []
        self.flog: list[tuple[float, str]] = []
        self.viol: dict[str, list[str]] = {}
        self.viol_count: dict[str, int] = {}
        self.warnings: list[str] = []
        self.races: list[dict] = []
        self.takeovers: list[dict] = []
        self.freed: list[dict] = []
        self.stopping = False
        self.stats: dict[str, int] = {}
        self.fault_counts: dict[str, int] = {}
        self.tasks: set[asyncio.Task] = set()
        self.t0 = now()
        self.wall0 = time.time()
        self.pproc = None
        self.pseq = 0
        self.packs: dict[int, asyncio.Future] = {}
        self.peer_errors: list[dict] = []
        self.harness_error: str | None = None
        self.dir = tempfile.mkdtemp(prefix=f"chaos-{self.seed}-", dir=args.log_dir)
        self.tls_dir = os.path.join(self.dir, "tls") if args.tls else None
        if self.tls_dir:
            make_tls_files(self.tls_dir)

    # ------------------------------------------------------------------ helpers
    def rel(self, t):
        return "-" if t is None else f"+{t - self.t0:.3f}s"

    def say(self, text):
        print(f"[{now() - self.t0:7.3f}] {text}", flush=True)

    def log_fault(self, t, text):
        self.flog.append((t, text))
        self.say(text)

    def violate(self, kind, text):
        self.viol_count[kind] = self.viol_count.get(kind, 0) + 1
        lst = self.viol.setdefault(kind, [])
        if len(lst) < 25:
            lst.append(text)
        if self.viol_count[kind] <= 3:
            self.say(f"VIOLATION [{kind}] {text}")

    def spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t):
        self.tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            if not isinstance(exc, (asyncio.CancelledError, SystemExit)):
                import traceback
                self.harness_error = self.harness_error or "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.say(f"harness task failed: {exc!r}")

    async def sleep_until(self, t):
        d = t - now()
        if d > 0:
            await asyncio.sleep(d)

    # ------------------------------------------------------------------ proxy
    async def start_proxy(self):
        err = open(os.path.join(self.dir, "proxy.log"), "wb")
        self.pproc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "--_proxy", *([self.tls_dir] if self.tls_dir else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            preexec_fn=_child_setup, start_new_session=True, limit=1 << 20)
        err.close()
        _GROUPS.add(self.pproc.pid)
        self.pevents = open(os.path.join(self.dir, "proxy-events.jsonl"), "wb")
        self.spawn(self.read_proxy())
        if self.args.trace_peers:
            await self.pcmd(op="trace", path=os.path.join(self.dir, "peer-trace.txt"))

    async def read_proxy(self):
        while True:
            line = await self.pproc.stdout.readline()
            if not line:
                if not self.stopping:
                    self.harness_error = self.harness_error or "the proxy process died (see proxy.log)"
                return
            if not self.pevents.closed:
                self.pevents.write(line)
            ev = json.loads(line)
            if "ack" in ev:
                fut = self.packs.pop(ev["ack"], None)
                if fut is not None and not fut.done():
                    fut.set_result(ev["t"])
            elif ev["ev"] == "up":
                self.tl.proxy_up(ev)
            elif ev["ev"] == "down":
                self.tl.proxy_down(ev)
            elif ev["ev"] == "error":
                self.peer_errors.append(ev)

    async def pcmd(self, **kw) -> float:
        self.pseq += 1
        kw["seq"] = self.pseq
        fut = asyncio.get_running_loop().create_future()
        self.packs[self.pseq] = fut
        self.pproc.stdin.write((json.dumps(kw) + "\n").encode())
        await self.pproc.stdin.drain()
        return await asyncio.wait_for(fut, 10)

    # ------------------------------------------------------------------ nodes
    def mesh_missing(self):
        return [(a, b) for a, b in itertools.combinations(range(self.n), 2)
                if self.tl.lk_count.get((a, b), 0) <= 0]

    async def wait_mesh(self, timeout):
        deadline = now() + timeout
        while now() < deadline:
            if not self.mesh_missing():
                return True
            await asyncio.sleep(0.05)
        return not self.mesh_missing()

    async def restart(self, node: NodeProc, why: str):
        ok = await node.start()
        t = now()
        if not ok:
            self.harness_error = self.harness_error or (
                f"node{node.idx} did not start again on port {node.port} (see {node.logs[-1]})")
            return False
        node.state = "up"
        self.tl.node_state(node.idx, t, "up", f"node{node.idx} up ({why})")
        self.log_fault(t, f"node{node.idx} up again (incarnation {node.inc}, id {node.ids[-1]})")
        return True

    async def watch_nodes(self):
        while not self.stopping:
            for node in self.nodes:
                if not node.check_alive():
                    inc, rc, t = node.exits[-1]
                    self.violate("crash", f"node{node.idx} (incarnation {inc}, id {node.ids[inc]}) exited "
                                 f"by itself with status {rc} at {self.rel(t)}; log {node.logs[inc]}")
                    node.state = "down"
                    self.tl.node_state(node.idx, t, "down", f"node{node.idx} crashed")
                    await self.restart(node, "after a crash")
            await asyncio.sleep(0.25)

    # ------------------------------------------------------------------ clients
    async def login(self, node_idx, name, room, kind, fresh, timeout=8.0) -> Sess:
        node = self.nodes[node_idx]
        s = Sess(self, kind, node_idx, node.inc, name, room, fresh)
        self.sessions.append(s)
        s.t_send = now()
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: ClientProto(s), "127.0.0.1", node.port)
        except OSError:
            s.reply = "connect-failed"
            s.t_reply = s.t_end = now()
            s.end_reason = "connect-failed"
            return s
        try:
            await asyncio.wait_for(asyncio.shield(s.reply_fut), timeout)
        except asyncio.TimeoutError:
            s.reply = "timeout"
            s.t_end = now()
            s.end_reason = "timeout"
            if not s.reply_fut.done():
                s.reply_fut.set_result("timeout")
            s.tr.abort()
        return s

    async def traffic(self, k):
        rng = random.Random(f"{self.seed}/client/{k}")
        home = k % self.n
        room = self.rooms[(k // self.n) % len(self.rooms)]
        inc = 0
        interval = 1.0 / self.args.rate
        while not self.stopping:
            node = self.nodes[home]
            if node.state == "down":
                await asyncio.sleep(0.1)
                continue
            name = f"c{k}x{inc}"
            if inc > 0:
                room = rng.choice(self.rooms)
            inc += 1
            s = await self.login(home, name, room, "traffic", fresh=True)
            if s.reply != "200":
                if s.tr is not None:
                    s.tr.abort()
                await asyncio.sleep(0.3)
                continue
            life = rng.expovariate(1.0 / self.args.churn) if self.args.churn > 0 else float("inf")
            t_leave = now() + life
            nxt = now()
            while s.open and not self.stopping and now() < t_leave:
                nxt += interval * rng.uniform(0.5, 1.5)
                d = nxt - now()
                if d > 0:
                    await asyncio.sleep(d)
                else:
                    nxt = now()
                if s.open and not self.stopping:
                    s.send_next()
            if self.stopping:
                return
            if s.open:
                s.leave()
            await asyncio.sleep(rng.uniform(0.2, 1.0))

    def holders_on(self, idx):
        return sorted((s for s in self.sessions if s.node == idx and s.open and s.kind == "traffic"
                       and s.inc == self.nodes[idx].inc), key=lambda s: s.name)

    # ------------------------------------------------------------------ faults
    async def run_fault(self, f: Fault):
        self.fault_counts[f.kind] = self.fault_counts.get(f.kind, 0) + 1
        rng = random.Random(f.rseed)
        if f.kind == "kill":
            await self.f_kill(f, rng)
        elif f.kind == "stall":
            await self.f_stall(f, rng)
        elif f.kind == "cut":
            await self.f_cut(f, rng)
        elif f.kind == "partition":
            await self.f_partition(f, rng)
        elif f.kind == "race":
            name = f"race{f.idx}"
            t = now()
            self.log_fault(t, f"race: {name} on node{f.nodes[0]} and node{f.nodes[1]}")
            await self.race(f, rng, f.nodes, name, hold_until=None)

    async def f_kill(self, f, rng):
        node = self.nodes[f.nodes[0]]
        if node.state != "up":
            return
        holders = self.holders_on(node.idx)
        victim = rng.choice(holders) if holders else None
        t = now()
        f.t_start = t
        node.state = "down"
        self.tl.node_state(node.idx, t, "down", f"kill -9 node{node.idx}")
        self.tl.faults.append((t, {node.idx}, f"kill -9 node{node.idx}"))
        node.kill_proc()
        self.log_fault(t, f"fault #{f.idx}: kill -9 node{node.idx} (incarnation {node.inc}, id "
                          f"{node.ids[node.inc]}); restart in {f.dur:.1f}s")
        if victim is not None:
            self.spawn(self.takeover(f, rng, victim, t + self.pt + self.margin, "kill",
                                     [i for i in range(self.n) if i != node.idx]))
        await asyncio.sleep(f.dur)
        await self.restart(node, f"restart after kill, fault #{f.idx}")
        f.t_restore = now()
        self.tl.faults.append((f.t_restore, {node.idx}, f"node{node.idx} restarted"))

    async def f_stall(self, f, rng):
        node = self.nodes[f.nodes[0]]
        if node.state != "up":
            return
        holders = self.holders_on(node.idx)
        victim = rng.choice(holders) if holders else None
        t = now()
        f.t_start = t
        node.signal(signal.SIGSTOP)
        node.state = "stopped"
        self.tl.node_state(node.idx, t, "stopped", f"SIGSTOP node{node.idx}")
        self.tl.faults.append((t, {node.idx}, f"SIGSTOP node{node.idx}"))
        self.log_fault(t, f"fault #{f.idx}: SIGSTOP node{node.idx} for {f.dur:.1f}s")
        at = t + self.pt + self.margin
        if victim is not None and f.dur >= self.pt + self.margin + 1.0:
            self.spawn(self.takeover(f, rng, victim, at, "stall",
                                     [i for i in range(self.n) if i != node.idx]))
        await asyncio.sleep(f.dur)
        t2 = now()
        node.signal(signal.SIGCONT)
        node.state = "up"
        f.t_restore = t2
        self.tl.node_state(node.idx, t2, "up", f"SIGCONT node{node.idx}")
        self.tl.faults.append((t2, {node.idx}, f"SIGCONT node{node.idx}"))
        self.log_fault(t2, f"fault #{f.idx}: SIGCONT node{node.idx}")

    async def cut(self, f, pairs, nodes, what):
        t = now()
        self.tl.event(t, nodes, what)
        t_ack = await self.pcmd(op="cut", pairs=pairs, mode=f.mode)
        self.tl.event(t_ack, nodes, what)
        self.tl.faults.append((t, set(nodes), what))
        return t

    async def heal(self, f, pairs, nodes, what):
        t = now()
        self.tl.event(t, nodes, what)
        t_ack = await self.pcmd(op="heal", pairs=pairs)
        self.tl.event(t_ack, nodes, what)
        self.tl.faults.append((t, set(nodes), what))
        return t

    async def f_cut(self, f, rng):
        i, j = f.nodes
        t = await self.cut(f, [[i, j]], {i, j}, f"cut {i}-{j}")
        f.t_start = t
        self.log_fault(t, f"fault #{f.idx}: cut link {i}-{j} ({f.mode}) for {f.dur:.1f}s")
        await self.sleep_until(t + f.dur)
        f.t_restore = await self.heal(f, [[i, j]], {i, j}, f"heal {i}-{j}")
        self.log_fault(f.t_restore, f"fault #{f.idx}: link {i}-{j} restored")

    async def f_partition(self, f, rng):
        a, b = f.groups
        pairs = [[x, y] for x in a for y in b]
        t = await self.cut(f, pairs, set(range(self.n)), f"partition {a}|{b}")
        f.t_start = t
        self.log_fault(t, f"fault #{f.idx}: partition {a} | {b} ({f.mode}) for {f.dur:.1f}s")
        at = t + self.pt + self.margin
        heal_at = t + f.dur
        if heal_at - at >= 1.0:
            # A name held on one side can be taken on the other once the sides saw the split;
            # the merge gives it back to the earlier login.
            holders = [s for x in a for s in self.holders_on(x)]
            if holders:
                victim = rng.choice(sorted(holders, key=lambda s: s.name))
                self.spawn(self.takeover(f, rng, victim, at, "partition", list(b)))
            # Two logins of one fresh name, one on each side.
            x, y = rng.choice(a), rng.choice(b)
            self.spawn(self.delayed_race(f, rng, at, [x, y], f"prace{f.idx}", hold_until=heal_at + 6.0))
        await self.sleep_until(heal_at)
        f.t_restore = await self.heal(f, pairs, set(range(self.n)), f"heal {a}|{b}")
        self.log_fault(f.t_restore, f"fault #{f.idx}: partition healed")

    async def delayed_race(self, f, rng, at, nodes, name, hold_until):
        await self.sleep_until(at)
        self.log_fault(now(), f"race across the partition: {name} on node{nodes[0]} and node{nodes[1]}")
        await self.race(f, rng, nodes, name, hold_until=hold_until)

    async def race(self, f, rng, nodes, name, hold_until):
        recs = await asyncio.gather(*(self.login(i, name, f"rc{f.idx}", "race", fresh=True) for i in nodes))
        self.races.append({"fault": f.idx, "name": name, "recs": list(recs), "final": False})
        self.say(f"race {name}: " + ", ".join(f"node{r.node}={r.reply}" for r in recs))
        winners = [r for r in recs if r.reply == "200"]
        if not winners:
            return
        if hold_until is None:
            hold_until = now() + rng.uniform(1.0, 3.0)
        waits = [w.closed_fut for w in winners]
        try:
            await asyncio.wait_for(asyncio.gather(*[asyncio.shield(x) for x in waits]),
                                   max(0.0, hold_until - now()))
        except asyncio.TimeoutError:
            pass
        for w in winners:
            w.leave()
        t_x = max(w.t_end for w in winners)
        others = [i for i in range(self.n) if i not in {w.node for w in winners}]
        rng.shuffle(others)
        await self.freed_probe(name, t_x, others, f"rc{f.idx}")

    async def freed_probe(self, name, t_x, order, room):
        """A name whose sessions ended at t_x must be free cluster-wide within a second."""
        probe = {"name": name, "t_x": t_x, "attempts": []}
        self.freed.append(probe)
        await self.sleep_until(t_x + 1.0 + 0.3)
        deadline = t_x + 22.0
        while True:
            node = next((i for i in order if self.nodes[i].state == "up"), None)
            if node is None:
                node = next((i for i in range(self.n) if self.nodes[i].state == "up"), 0)
            s = await self.login(node, name, room, "freed", fresh=False)
            probe["attempts"].append(s)
            if s.reply == "200":
                await asyncio.sleep(0.3)
                s.leave()
                return
            if now() > deadline or self.stopping:
                return
            await asyncio.sleep(1.0)

    async def takeover(self, f, rng, victim: Sess, at, kind, candidates):
        """Logs in, on another node, a name held on a node that failed (killed, stalled, cut off)."""
        await self.sleep_until(at)
        order = list(candidates)
        rng.shuffle(order)
        node = next((i for i in order if self.nodes[i].state == "up"), None)
        if node is None:
            return
        self.say(f"takeover: {victim.name} (held on node{victim.node}) logs in on node{node}")
        s = await self.login(node, victim.name, f"tk{f.idx}", "takeover", fresh=False)
        self.takeovers.append({"fault": f.idx, "kind": kind, "victim": victim, "probe": s, "f": f})
        self.say(f"takeover {victim.name} on node{node}: {s.reply}")
        if s.reply != "200":
            return
        if kind == "kill":
            await asyncio.sleep(1.0)
        else:
            # Held until the merge takes it back (the victim's claim is earlier), or for a while.
            end = (f.t_start or now()) + f.dur + 8.0
            try:
                await asyncio.wait_for(asyncio.shield(s.closed_fut), max(0.0, end - now()))
            except asyncio.TimeoutError:
                pass
        s.leave()

    # ------------------------------------------------------------------ convergence
    async def converge(self):
        t_heal = now()
        self.say("faults over: waiting for the cluster to converge")
        if not await self.wait_mesh(self.args.converge_timeout):
            self.violate("convergence", f"links {self.mesh_missing()} still down "
                         f"{self.args.converge_timeout:.0f}s after the last fault was healed")
        t_mesh = now()
        self.say(f"full mesh {t_mesh - t_heal:.2f}s after the last heal")
        await asyncio.sleep(2.0)
        probes = await asyncio.gather(*(self.login(i, f"q{i}{room}", room, "conv", fresh=True)
                                        for i in range(self.n) for room in self.rooms))
        bad = [p for p in probes if p.reply != "200"]
        for p in bad:
            self.violate("convergence", f"convergence probe {p.label} got {p.reply!r}")
        good = [p for p in probes if p.reply == "200"]
        await asyncio.sleep(0.3)
        t_send = now()
        for p in good:
            p.send_next()
        deadline = t_send + 5.0
        while now() < deadline:
            if all(all(q.name_b in p.got for q in good if q.room == p.room) for p in good):
                break
            await asyncio.sleep(0.05)
        for p in good:
            miss = [q.name for q in good if q.room == p.room and q.name_b not in p.got]
            if miss:
                self.violate("convergence", f"after convergence, {p.label} did not receive the probe "
                             f"message of {miss} within 5s (sent at {self.rel(t_send)})")
        self.say(f"convergence probes: {len(good)} members, every message everywhere"
                 if "convergence" not in self.viol else "convergence probes failed")
        recs = await asyncio.gather(*(self.login(i, "finalrace", "rcfinal", "race", fresh=True)
                                      for i in range(self.n)))
        self.races.append({"fault": "final", "name": "finalrace", "recs": list(recs), "final": True})
        replies = [r.reply for r in recs]
        self.say("final race: " + ", ".join(f"node{r.node}={r.reply}" for r in recs))
        if replies.count("200") != 1 or replies.count("403") != self.n - 1:
            self.violate("convergence", "final race of one fresh name on every node after convergence: "
                         + ", ".join(f"node{r.node}={r.reply}" for r in recs) + " (want exactly one 200)")
        await asyncio.sleep(0.5)
        for r in recs:
            r.leave()

    # ------------------------------------------------------------------ the run
    async def run(self) -> int:
        a = self.args
        self.say(f"chaos: seed={self.seed} duration={a.duration}s nodes={self.n} clients={a.clients} "
                 f"rooms={a.rooms} rate={a.rate}/s tls={'on' if a.tls else 'off'} logs in {self.dir}")
        ports = free_ports(2 * self.n)
        prng = random.Random(f"{self.seed}/peers")
        perm = list(range(self.n))
        prng.shuffle(perm)
        # --peer forms a ring in a seeded order; the full mesh comes from gossip.
        self.peers_of = {perm[k]: [perm[k - 1]] for k in range(self.n)}
        self.nodes = [NodeProc(self, i, ports[2 * i], ports[2 * i + 1]) for i in range(self.n)]
        await self.start_proxy()
        for nd in self.nodes:
            await self.pcmd(op="listen", node=nd.idx, port=nd.pport, upstream=nd.port)
        oks = await asyncio.gather(*(nd.start() for nd in self.nodes))
        t = now()
        for nd, ok in zip(self.nodes, oks):
            if not ok:
                self.harness_error = f"node{nd.idx} did not start (see {nd.logs[-1]})"
                return self.finish()
            nd.state = "up"
            self.tl.node_state(nd.idx, t, "up", f"node{nd.idx} started")
        for nd in self.nodes:
            self.say(f"node{nd.idx}: clients 127.0.0.1:{nd.port}, peers via proxy 127.0.0.1:{nd.pport}, "
                     f"--peer node{self.peers_of[nd.idx][0]}, id {nd.ids[-1]}")
        self.spawn(self.watch_nodes())
        if not await self.wait_mesh(20.0):
            self.violate("convergence", f"the cluster did not form a full mesh in 20s: missing {self.mesh_missing()}")
            return self.finish()
        self.say("full mesh formed")
        for k in range(a.clients):
            self.spawn(self.traffic(k))
        deadline = now() + 15.0
        while now() < deadline and sum(1 for s in self.sessions if s.open and s.kind == "traffic") < a.clients:
            await asyncio.sleep(0.05)
        self.say(f"{sum(1 for s in self.sessions if s.open)} clients logged in")
        self.chaos_start = now() + 1.0
        span = max(10.0, self.t0 + a.duration - a.tail - self.chaos_start)
        schedule = make_schedule(self.seed, self.n, span, a)
        self.say(f"schedule: {len(schedule)} entries over {span:.0f}s: " +
                 ", ".join(f"{k}={sum(f.kind == k for f in schedule)}"
                           for k in ("kill", "stall", "cut", "partition", "race")))
        fault_tasks = []
        for f in schedule:
            await self.sleep_until(self.chaos_start + f.t)
            if self.harness_error:
                break
            fault_tasks.append(self.spawn(self.run_fault(f)))
        if fault_tasks:
            await asyncio.wait(fault_tasks, timeout=60)
        # Safety net: nothing may be left broken (the schedule heals everything it breaks).
        for nd in self.nodes:
            if nd.state == "stopped":
                nd.signal(signal.SIGCONT)
                nd.state = "up"
                self.tl.node_state(nd.idx, now(), "up", "SIGCONT (safety net)")
        await self.sleep_until(self.chaos_start + span)
        self.t_last_fault = max([x[0] for x in self.tl.faults], default=now())
        if not self.harness_error:
            await self.converge()
        # Pending probes (freed names) finish; then the traffic stops and drains.
        pend = [t for t in self.tasks if t.get_coro().__name__ in ("race", "freed_probe", "takeover",
                                                                     "delayed_race")]
        if pend:
            await asyncio.wait(pend, timeout=30)
        # Fault-free traffic until the end of the run: rule L applies to all of it.
        await self.sleep_until(self.t0 + a.duration - self.Q - 1.0)
        self.stopping = True
        self.say("stopping traffic; draining")
        await asyncio.sleep(self.Q + 1.0)
        t_close = now()
        for s in self.sessions:
            if s.tr is not None and not s.tr.is_closing():
                if s.t_end is None:
                    s.t_end = t_close
                    s.end_reason = "end of run"
                s.open = False
                s.tr.abort()
        await asyncio.sleep(0.2)
        return self.finish()

    def stop_all(self):
        self.stopping = True
        for nd in getattr(self, "nodes", []):
            if nd.proc is not None and nd.proc.poll() is None:
                nd.signal(signal.SIGCONT)
                nd.signal(signal.SIGTERM)
        deadline = time.time() + 3.0
        for nd in getattr(self, "nodes", []):
            if nd.proc is None:
                continue
            try:
                nd.proc.wait(max(0.05, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            nd.kill_proc()
        if getattr(self, "pevents", None) is not None:
            self.pevents.close()
        if self.pproc is not None:
            if self.args.trace_peers:
                time.sleep(0.5)  # the proxy flushes its trace every 0.2s
            try:
                self.pproc.kill()
            except ProcessLookupError:
                pass
            _GROUPS.discard(self.pproc.pid)
        _kill_groups()

    def finish(self) -> int:
        t_end = now()
        self.stop_all()
        self.tl.seal(t_end + 0.001)
        for s in self.sessions:
            if s.t_end is None:
                s.t_end = t_end
                s.end_reason = s.end_reason or "end of run"
        if not self.harness_error:
            Checker(self).run()
        return report(self)


# ======================================================================================
# The checks (docs/chaos.md). They run after the nodes are stopped, on the recorded timeline
# and on what every client saw; duplicates, order and corrupt lines are checked as they arrive.

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}) (\w+) (.*)$")


def ranges_text(rs):
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in rs)


def missing_seqs(st, lo, hi):
    """Seqs in [lo, hi] not in the received ranges `st` ([last, [[a, b], ...]] or None)."""
    if st is None:
        return [(lo, hi)]
    out = []
    cur = lo
    for a, b in st[1]:
        if b < cur:
            continue
        if a > hi:
            break
        if a > cur:
            out.append((cur, min(hi, a - 1)))
        cur = max(cur, b + 1)
        if cur > hi:
            break
    if cur <= hi:
        out.append((cur, hi))
    return out


class Checker:
    def __init__(self, d: Driver):
        self.d, self.tl, self.Q, self.R = d, d.tl, d.Q, d.R
        self.logs: dict[int, list[tuple[float, int, str]]] = {}

    def run(self):
        self.read_logs()
        self.logins()
        self.disconnects()
        self.loss()
        self.names()
        self.race_checks()
        self.takeover_checks()
        self.freed_checks()
        self.link_drops()

    # -- node logs
    def read_logs(self):
        d = self.d
        off = d.wall0 - d.t0
        import datetime
        for nd in d.nodes:
            entries = []
            for inc, path in enumerate(nd.logs):
                try:
                    text = open(path, errors="replace").read()
                except OSError:
                    continue
                for line in text.splitlines():
                    m = LOG_LINE.match(line)
                    if m:
                        try:
                            wall = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S%z").timestamp()
                        except ValueError:
                            wall = 0.0
                        t = wall - off
                        entries.append((t, inc, line))
                        lvl, rest = m.group(2), m.group(3)
                        if "protocol error" in rest:
                            d.violate("protocol", f"node{nd.idx}.{inc} dropped a peer link for a protocol error "
                                      f"(a node sent something malformed): {line}")
                        elif "slow consumer" in rest:
                            d.violate("harness", f"node{nd.idx}.{inc} dropped a slow client: the driver did not "
                                      f"read fast enough (lower --rate or --clients): {line}")
                        elif lvl in ("error", "critical"):
                            d.violate("node-error", f"node{nd.idx}.{inc}: {line}")
                        elif "peer link refused" in rest:
                            d.warnings.append(f"node{nd.idx}.{inc}: {line}")
                    elif "Fatal error" in line or "Illegal instruction" in line or "Segmentation" in line:
                        d.violate("crash", f"node{nd.idx}.{inc}: {line}")
            self.logs[nd.idx] = entries

    def excerpt(self, nodes, t0, t1, limit=12):
        out = []
        for i in sorted(set(nodes)):
            for t, inc, line in self.logs.get(i, []):
                if t0 - 1.0 <= t <= t1 + 1.0:
                    out.append(f"      node{i}.{inc}| {line}")
        if len(out) > limit:
            out = out[:limit // 2] + [f"      ... {len(out) - limit} more ..."] + out[-limit // 2:]
        return out

    def events_text(self, nodes, t0, t1):
        evs = self.tl.events_near(nodes, t0, t1)
        return "; ".join(f"{self.d.rel(t)} {what}" for t, _, what in evs[:12]) or "none"

    # -- logins and sessions
    def logins(self):
        d, tl = self.d, self.tl
        H = d.args.login_bound
        for s in d.sessions:
            if s.reply == "403" and s.fresh and s.kind in ("traffic", "conv"):
                d.violate("name", f"{s.label}: 403 for a name never used before in this run "
                          f"(login sent {d.rel(s.t_send)})")
            answered = s.reply in ("200", "403")
            if s.reply == "eof" and tl.running_throughout(s.node, s.t_send, s.t_reply):
                d.violate("login", f"{s.label}: the node closed the connection without answering the login "
                          f"(sent {d.rel(s.t_send)}, closed {d.rel(s.t_reply)})")
            elif (s.reply == "timeout" or (answered and s.t_reply - s.t_send > H)) \
                    and tl.running_throughout(s.node, s.t_send, s.t_send + H):
                got = f"answered {s.reply} after {s.t_reply - s.t_send:.2f}s" if answered else "no answer"
                d.violate("login", f"{s.label}: login sent {d.rel(s.t_send)} got {got} (bound {H}s) although "
                          f"node{s.node} ran throughout; events: {self.events_text(None, s.t_send, s.t_send + H)}")
            d.stats["logins"] = d.stats.get("logins", 0) + 1
            if s.reply == "200":
                d.stats["granted"] = d.stats.get("granted", 0) + 1

    def disconnects(self):
        d, tl = self.d, self.tl
        for s in d.sessions:
            if s.reply != "200" or s.end_reason != "eof":
                continue
            crashed = any(t_end_ok for t_end_ok in (s.t_end - 0.05 <= t <= s.t_end + 1.0
                                                    for _, _, t in d.nodes[s.node].exits))
            if crashed:
                continue  # reported as a crash
            if tl.running(s.node, s.t_end - 0.05) and tl.running(s.node, s.t_end):
                d.violate("disconnect", f"{s.label} (member since {d.rel(s.t_reply)}) was disconnected by its "
                          f"node at {d.rel(s.t_end)} with no notice while the node ran")

    # -- rule L: no loss between nodes that stayed connected
    def loss(self):
        d, tl, Q = self.d, self.tl, self.Q
        members = [s for s in d.sessions if s.reply == "200" and s.kind in ("traffic", "conv")]
        by_room: dict[str, list[Sess]] = {}
        for s in members:
            if len(s.sent):
                by_room.setdefault(s.room, []).append(s)
        required = 0
        indirect = 0
        lost = 0
        delivered = 0
        for r in members:
            for st in r.got.values():
                delivered += sum(b - a + 1 for a, b in st[1])
            lo = r.t_reply
            hi = r.t_end - Q
            if hi <= lo:
                continue
            for s in by_room.get(r.room, []):
                times = s.sent
                if times[-1] <= lo or times[0] > hi:
                    continue
                for qs, qe, how in tl.required_intervals(s.node, r.node, Q):
                    a, b = max(lo, qs), min(hi, qe)
                    if a >= b:
                        continue
                    i0 = bisect.bisect_right(times, a)
                    i1 = bisect.bisect_right(times, b)
                    if i0 >= i1:
                        continue
                    required += i1 - i0
                    if how == "indirect":
                        indirect += i1 - i0
                    miss = missing_seqs(r.got.get(s.name_b), i0 + 1, i1)
                    if not miss:
                        continue
                    n_miss = sum(y - x + 1 for x, y in miss)
                    lost += n_miss
                    first = miss[0][0]
                    t = times[first - 1]
                    msg = [f"{s.name}:{first}:{s.room} sent {d.rel(t)} by {s.label} (node{s.node}) never reached "
                           f"{r.label} (member {d.rel(r.t_reply)}..{d.rel(r.t_end)}); missing from that sender "
                           f"in this quiet stretch [{d.rel(a)}, {d.rel(b)}]: seq {ranges_text(miss)} "
                           f"({n_miss} of {i1 - i0}); link {s.node}-{r.node} "
                           f"{'up' if how == 'direct' else 'cut (path through other nodes)'}; "
                           f"events near: {self.events_text(None, t - 3 * Q, t + 3 * Q)}"]
                    if d.viol_count.get("loss", 0) < 3:
                        msg += self.excerpt({s.node, r.node}, t - 2, t + 2)
                    d.violate("loss", "\n".join(msg))
        d.stats["delivered"] = delivered
        d.stats["required"] = required
        d.stats["required_indirect"] = indirect
        d.stats["lost_required"] = lost

    # -- rule N: names
    def names(self):
        d, tl, R = self.d, self.tl, self.R
        holders: dict[str, list[Sess]] = {}
        for s in d.sessions:
            if s.reply == "200":
                holders.setdefault(s.key, []).append(s)
        conflicts = 0
        for key, hs in holders.items():
            if len(hs) < 2:
                for s in hs:
                    if s.kicked:
                        d.violate("name", f"{s.label} got the name-lost notice at {d.rel(s.t_kicked)} but no "
                                  f"other session ever held {key}")
                continue
            hs.sort(key=lambda s: s.t_reply)
            for s in hs:
                if not s.kicked:
                    continue
                rivals = [o for o in hs if o is not s and o.node != s.node and o.t_reply < s.t_kicked + 1.0
                          and o.t_end > s.t_reply]
                if not rivals:
                    d.violate("name", f"{s.label} got the name-lost notice at {d.rel(s.t_kicked)} but no "
                              f"session on another node held {key} at the same time")
                    continue
                # Every rival's login was sent after this session's 200: this claim is the earlier.
                later = [o for o in rivals if s.t_reply + 0.05 < o.t_send]
                if len(later) == len(rivals) and all(not o.kicked or o.t_kicked > s.t_kicked + R for o in later):
                    o = later[0]
                    d.violate("merge", f"{key}: the earlier login {s.label} (200 at {d.rel(s.t_reply)}) lost the "
                              f"name at {d.rel(s.t_kicked)} to the later {o.label} (login sent "
                              f"{d.rel(o.t_send)}); the earlier claim must keep it")
            for h1, h2 in itertools.combinations(hs, 2):
                s0, e0 = max(h1.t_reply, h2.t_reply), min(h1.t_end, h2.t_end)
                if e0 <= s0:
                    continue
                if h1.node == h2.node:
                    if h1.inc == h2.inc:
                        d.violate("name", f"{key} held twice on node{h1.node}: {h1.label} and {h2.label} over "
                                  f"[{d.rel(s0)}, {d.rel(e0)}]")
                    continue
                conflicts += 1
                if h1.kicked and h2.kicked and not any(o.t_reply < min(h1.t_kicked, h2.t_kicked) and
                                                       o.t_end > max(h1.t_kicked, h2.t_kicked)
                                                       for o in hs if o is not h1 and o is not h2):
                    d.violate("merge", f"{key}: both {h1.label} and {h2.label} lost the name (notices at "
                              f"{d.rel(h1.t_kicked)}, {d.rel(h2.t_kicked)}); exactly one must keep it")
                for cs, ce in tl.connected_intervals(h1.node, h2.node):
                    lo, hi = max(s0, cs + R), min(e0, ce)
                    if lo < hi:
                        msg = [f"{key} held by {h1.label} (200 at {d.rel(h1.t_reply)}, until {d.rel(h1.t_end)} "
                               f"{h1.end_reason}) and {h2.label} (200 at {d.rel(h2.t_reply)}, until "
                               f"{d.rel(h2.t_end)} {h2.end_reason}) at once during [{d.rel(lo)}, {d.rel(hi)}], "
                               f"while node{h1.node} and node{h2.node} had been connected since {d.rel(cs)} "
                               f"(more than the {R}s a merge may take)"]
                        msg += self.excerpt({h1.node, h2.node}, lo - 1, lo + 1)
                        d.violate("name", "\n".join(msg))
                        break
        d.stats["name_conflicts"] = conflicts

    def race_checks(self):
        d, tl, Q = self.d, self.tl, self.Q
        for race in d.races:
            recs = race["recs"]
            replies = [r.reply for r in recs]
            answered = all(x in ("200", "403") for x in replies)
            nodes = [r.node for r in recs]
            desc = ", ".join(f"node{r.node}={r.reply}" for r in recs)
            if answered and "200" not in replies:
                d.violate("race", f"{race['name']}: every login got 403 ({desc}); one must get 200")
            if not answered or race["final"]:
                continue
            t0 = min(r.t_send for r in recs)
            t1 = max(r.t_reply for r in recs)
            quiet = tl.quiet(nodes, t0 - Q, t1 + 0.1) and all(
                tl.connected_throughout(a, b, t0 - Q, t1 + 0.1) for a, b in itertools.combinations(nodes, 2))
            if quiet:
                d.stats["races_connected"] = d.stats.get("races_connected", 0) + 1
                if replies.count("200") != 1:
                    d.violate("race", f"{race['name']} at {d.rel(t0)}: {desc} while the nodes were connected "
                              f"and untouched by faults; exactly one 200 is promised")
            else:
                d.stats["races_faulted"] = d.stats.get("races_faulted", 0) + 1
                if replies.count("200") > 1:
                    d.stats["races_both_granted"] = d.stats.get("races_both_granted", 0) + 1

    def takeover_checks(self):
        d, tl = self.d, self.tl
        for tk in d.takeovers:
            p, v, f = tk["probe"], tk["victim"], tk["f"]
            if p.reply not in ("200", "403"):
                continue
            X, Y = v.node, p.node
            ok_y = tl.running_throughout(Y, p.t_send, p.t_reply)
            if tk["kind"] == "kill":
                expect = ok_y
            else:
                expect = ok_y and tl.disconnected_throughout(X, Y, f.t_start + 0.3, p.t_reply)
            if not expect:
                d.stats["takeovers_unchecked"] = d.stats.get("takeovers_unchecked", 0) + 1
                continue
            d.stats["takeovers_checked"] = d.stats.get("takeovers_checked", 0) + 1
            if p.reply != "200":
                msg = [f"{p.name}: held by {v.label} whose node failed ({tk['kind']}, fault #{f.idx} at "
                       f"{d.rel(f.t_start)}), was refused (403) on node{Y} at {d.rel(p.t_send)}, "
                       f"{p.t_send - f.t_start:.2f}s later (peer timeout {d.pt}s + {d.margin}s margin)"]
                msg += self.excerpt({X, Y}, f.t_start, p.t_reply)
                d.violate("freed", "\n".join(msg))

    def freed_checks(self):
        d, tl, Q = self.d, self.tl, self.Q
        for fp in d.freed:
            at = fp["attempts"]
            if not at:
                continue
            first = at[0]
            if first.reply == "403":
                t0, t1 = fp["t_x"] - Q, first.t_reply
                calm = tl.quiet(None, t0, t1 + 0.1) and all(
                    tl.running(i, t1) for i in range(d.n)) and all(
                    tl.link_up(a, b, t1) for a, b in itertools.combinations(range(d.n), 2))
                if calm:
                    d.violate("freed", f"{fp['name']}: its last session ended {d.rel(fp['t_x'])}; a login on "
                              f"node{first.node} {first.t_send - fp['t_x']:.2f}s later got 403 although the "
                              f"cluster was whole and untouched by faults")
            if any(s.reply == "200" for s in at):
                d.stats["freed_ok"] = d.stats.get("freed_ok", 0) + 1
            elif at[-1].reply == "403":
                d.violate("freed", f"{fp['name']}: still refused {at[-1].t_send - fp['t_x']:.1f}s after its "
                          f"last session ended at {d.rel(fp['t_x'])} ({len(at)} attempts)")

    def link_drops(self):
        d, tl = self.d, self.tl
        dup = unexplained = 0
        for t, kind, pair, cid, by, errors in tl.link_log:
            if kind != "down" or by not in ("src", "dst"):
                continue
            if any("duplicate link" in e for e in errors):
                dup += 1
                continue
            if any(set(pair) & nodes and t - (d.pt + 1.5) <= ft <= t + 0.5 for ft, nodes, _ in tl.faults):
                continue
            unexplained += 1
            if unexplained <= 10:
                lines = [f"link {pair[0]}-{pair[1]} (conn {cid}) closed by node{pair[0] if by == 'src' else pair[1]}"
                         f"'s side at {d.rel(t)} with no fault near: errors {errors}"]
                lines += self.excerpt(set(pair), t - 1, t + 1, limit=8)
                d.warnings.append("\n".join(lines))
        d.stats["duplicate_link_closes"] = dup
        d.stats["unexplained_link_drops"] = unexplained


def report(d: Driver) -> int:
    a = d.args
    replay = (f"python3 Tests/chaos/chaos.py --bin {a.bin} --seed {d.seed} --duration {a.duration:g} "
              f"--nodes {a.nodes} --clients {a.clients} --rooms {a.rooms} --rate {a.rate:g}"
              + (" --tls" if a.tls else ""))
    out = ["", "=" * 78, f"chaos seed {d.seed}: " + ("HARNESS ERROR" if d.harness_error else
                                                     "FAIL" if d.viol_count else "PASS")]
    out.append(f"replay: {replay}")
    out.append("faults: " + (", ".join(f"{k}={v}" for k, v in sorted(d.fault_counts.items())) or "none"))
    sent = sum(len(s.sent) for s in d.sessions)
    st = d.stats
    out.append(f"traffic: {sent} messages sent, {st.get('delivered', 0)} delivered, "
               f"{st.get('required', 0)} deliveries required by rule L ({st.get('required_indirect', 0)} through "
               f"other nodes around a cut link), {st.get('lost_required', 0)} of them lost")
    out.append(f"logins: {st.get('logins', 0)} ({st.get('granted', 0)} granted); races: "
               f"{st.get('races_connected', 0)} between connected nodes (exactly one 200), "
               f"{st.get('races_faulted', 0)} under faults ({st.get('races_both_granted', 0)} granted twice); "
               f"name takeovers after failures: {st.get('takeovers_checked', 0)} checked; "
               f"names freed after release: {st.get('freed_ok', 0)}/{len(d.freed)}; "
               f"overlapping holders (partitions): {st.get('name_conflicts', 0)}")
    out.append(f"links: {st.get('duplicate_link_closes', 0)} duplicate-link closes, "
               f"{st.get('unexplained_link_drops', 0)} drops with no fault near")
    if d.viol_count or d.harness_error or a.verbose:
        out.append("fault log:")
        for t, text in d.flog:
            out.append(f"  {d.rel(t)} {text}")
        out.append("nodes: " + "; ".join(f"node{nd.idx} ids {','.join(nd.ids)}" for nd in d.nodes))
    if d.harness_error:
        out.append(f"harness error: {d.harness_error}")
    for kind in sorted(d.viol):
        out.append(f"violations [{kind}]: {d.viol_count[kind]}")
        for text in d.viol[kind]:
            out.append("  - " + text)
    if d.warnings:
        out.append(f"warnings: {len(d.warnings)}")
        for w in d.warnings[:10]:
            out.append("  - " + w)
    keep = bool(d.viol_count or d.harness_error or a.keep_logs)
    out.append(f"logs: {d.dir}" + ("" if keep else " (removed: pass --keep-logs to keep them)"))
    text = "\n".join(out)
    print(text, flush=True)
    if keep:
        with open(os.path.join(d.dir, "report.txt"), "w") as fh:
            fh.write(text + "\n")
    else:
        shutil.rmtree(d.dir, ignore_errors=True)
    if d.harness_error:
        return 2
    return 1 if d.viol_count else 0


def parse_args(argv):
    p = argparse.ArgumentParser(description="Chaos test of a tcp_chat cluster (see docs/chaos.md).")
    p.add_argument("--bin", required=True, help="the tcp_chat executable")
    p.add_argument("--seed", type=int, default=None, help="schedule seed (default: random, printed)")
    p.add_argument("--duration", type=float, default=100.0, help="seconds for the whole run (>= 45)")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--rooms", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0, help="messages per second per client")
    p.add_argument("--churn", type=float, default=40.0,
                   help="mean seconds a traffic client stays before it leaves and rejoins (0: never)")
    p.add_argument("--heartbeat-ms", type=int, default=200)
    p.add_argument("--peer-timeout-ms", type=int, default=1000)
    p.add_argument("--quiet-window", type=float, default=2.0, help="Q of rule L (seconds)")
    p.add_argument("--merge-window", type=float, default=2.0, help="R of rule N (seconds)")
    p.add_argument("--failure-margin", type=float, default=1.0,
                   help="after peer timeout + this, a failed node's names must be free")
    p.add_argument("--login-bound", type=float, default=6.0,
                   help="a login on a running node is answered within this many seconds")
    p.add_argument("--min-gap", type=float, default=2.0, help="least seconds between two fault starts")
    p.add_argument("--max-gap", type=float, default=6.0, help="most seconds between two fault starts")
    p.add_argument("--max-concurrent", type=int, default=2, help="faults active at once")
    p.add_argument("--max-faults", type=int, default=0, help="cap on faults (races excluded); 0: none")
    p.add_argument("--tail", type=float, default=25.0,
                   help="seconds at the end without faults (convergence checks, drain)")
    p.add_argument("--converge-timeout", type=float, default=15.0)
    p.add_argument("--log-dir", default=None, help="where the per-run temp dir goes (default $TMPDIR)")
    p.add_argument("--keep-logs", action="store_true", help="keep the logs of a passing run")
    p.add_argument("--verbose", action="store_true", help="print the fault log of a passing run too")
    p.add_argument("--tls", action="store_true",
                   help="peer links over mutual TLS (a test CA made with openssl; the proxy terminates TLS on both legs)")
    p.add_argument("--trace-peers", action="store_true",
                   help="write every peer line the proxies relay to peer-trace.txt in the log dir")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    if a.duration < 45:
        p.error("--duration must be at least 45 seconds")
    if a.nodes < 2 or a.clients < 1 or a.rooms < 1 or a.rate <= 0:
        p.error("need at least 2 nodes, 1 client, 1 room and a positive rate")
    a.bin = os.path.abspath(a.bin)
    if not (os.path.isfile(a.bin) and os.access(a.bin, os.X_OK)):
        p.error(f"{a.bin} is not an executable file")
    return a


async def amain(d: Driver, limit: float) -> int:
    try:
        return await asyncio.wait_for(d.run(), limit)
    except asyncio.TimeoutError:
        d.harness_error = d.harness_error or f"the run did not finish within {limit:.0f}s"
        return d.finish()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_proxy":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            asyncio.run(proxy_main(argv[1] if len(argv) > 1 else None))
        except (SystemExit, KeyboardInterrupt):
            pass
        return 0
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    d = Driver(args)
    try:
        rc = asyncio.run(amain(d, args.duration + 120.0))
    finally:
        _kill_groups()
    return rc


if __name__ == "__main__":
    sys.exit(main())
