#!/usr/bin/env python3
"""Runs the scale table of docs/scaling.md: N nodes on loopback, started as a chain.

    scripts/scale.py [--nodes 4,16,32,64,100] [--binary .build/release/tcp_chat]
    scripts/scale.py --nodes 24 --check          # CI: correctness only, no timing goals
    scripts/scale.py --nodes 48 --stress pin     # all nodes on one core: false deaths?
    scripts/scale.py --nodes 48 --stress stop    # SIGSTOP bursts of a few nodes

For each N it starts node 0 alone and node i with `--peer` node i-1 (so the mesh is
learned by gossip), `--rate-limit 0`, and measures, one row per N:

  formed    seconds from the first node's start until every node has N-1 peer links
            (all N processes are started at once; `started` is when the last listened)
  drops     peer links that went down while forming / after the mesh formed
            (of those while forming, how many for a peer timeout)
  idle cpu  the whole cluster's CPU over --idle-seconds with no traffic, in % of one core
  peer B/s  bytes each node sends per second while idle (mean), from its metrics
  login     p50 / p99 of --logins logins (handshake sent -> 200), to nodes in turn
  races     two logins of one name on two nodes at once: exactly one 200 each time
  chat      --messages messages from a member on node 0 to one member on every node:
            each member got all of them exactly once, in order; time until the last
  kill -9   a member's node is killed; seconds until its name is granted on another node
  false     nodes declared dead while alive (the killed node excepted)

With --check the script exits 1 if a correctness property fails (mesh not formed within
--form-timeout, a race without exactly one 200, a message lost, duplicated or reordered,
the killed node's name not freed within --kill-timeout, a false death); timings are
printed but never judged (machines are shared and noisy). Every wait is bounded.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK = os.sysconf("SC_CLK_TCK")


class Node:
    def __init__(self, index, binary, port, peer, workdir, extra, pin):
        self.index = index
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = os.path.join(workdir, f"node{index}.log")
        self.log = open(self.log_path, "wb")
        args = [binary, "server", "-a", "127.0.0.1", "-p", str(port), "--rate-limit", "0",
                "--metrics", "127.0.0.1:0"] + extra
        if peer:
            args += ["--peer", peer]
        if pin is not None:
            args = ["taskset", "-c", str(pin)] + args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        self.metrics = None

    def wait_started(self, deadline):
        """Reads `listening on` and `metrics on` from the node's stdout (bounded)."""
        listening = False
        while (not listening or self.metrics is None) and time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            listening = listening or line.startswith("listening on ")
            m = re.match(r"metrics on (\S+)", line)
            if m:
                self.metrics = m.group(1)
        if not listening or self.metrics is None:
            raise RuntimeError(f"node {self.index} did not start; see {self.log_path}")

    def scrape(self, timeout=5.0):
        """The node's metrics as {name-with-labels: value}."""
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=timeout) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def links(self):
        try:
            return int(self.scrape(timeout=2.0).get("tcp_chat_peer_links", -1))
        except OSError:
            return -1

    def peers_up(self):
        """The peers this node's log says are linked now (read incrementally)."""
        if not hasattr(self, "_up"):
            self._up, self._offset, self._rest = set(), 0, b""
        self.log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            m = re.search(rb"peer=([0-9a-f]{16})\b.*\[ChatNode\] peer link (up|down)$", line)
            if m:
                (self._up.add if m.group(2) == b"up" else self._up.discard)(m.group(1))
        return self._up

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])   # utime + stime

    def log_text(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


class Session:
    """A line-mode client session (docs/protocol.md)."""

    def __init__(self, port, user, room, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(f"{user}_{room}\n".encode())

    def line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line before the deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def free_ports(n):
    """n distinct ports free now, below the kernel's ephemeral range (so that no node's
    outgoing connection takes one before its node binds it)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random()
    ports = []
    while len(ports) < n:
        p = rng.randrange(10000, low)
        if p in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
    return ports


def count(text, needle):
    return text.count(needle)


def drop_reasons(texts):
    """Peer-link drops in log texts: total, and how many for a peer timeout."""
    total = sum(count(t, "peer link down") for t in texts)
    timeouts = sum(count(t, "peer link silent too long") for t in texts)
    return total, timeouts


def false_deaths(nodes, victim_id=None):
    """Nodes declared dead (`node declared dead`, or failed for not answering a claim)
    that were not the victim: every node is alive but the victim."""
    n = 0
    for node in nodes:
        text = node.log_text()
        for m in re.finditer(r"dead=([0-9a-f]{16})[^\n]*node declared dead", text):
            if m.group(1) != victim_id:
                n += 1
        for m in re.finditer(r"node=([0-9a-f]{16})[^\n]*did not answer a claim", text):
            if m.group(1) != victim_id:
                n += 1
    return n


def node_id(node):
    m = re.search(r"node=([0-9a-f]{16})[^\n]*node started", node.log_text())
    return m.group(1) if m else None


def run(n, args):
    workdir = tempfile.mkdtemp(prefix=f"scale{n}-")
    nodes = []
    row = {"nodes": n}
    stopper = None
    try:
        ports = free_ports(n)
        t0 = time.monotonic()
        for i in range(n):
            pin = 0 if args.stress == "pin" else None
            nodes.append(Node(i, args.binary, ports[i], nodes[-1].address if nodes else None, workdir, args.node_arg, pin))
        for node in nodes:
            node.wait_started(time.monotonic() + 30)
        started = time.monotonic() - t0
        # Formed: every node has N-1 links. Poll only the nodes not yet full, then confirm all.
        # Followed in the nodes' logs (`peer link up` / `peer link down`), which costs the
        # nodes nothing: scraping 100 busy nodes' metrics several times a second slowed the
        # formation it measured. The metrics confirm it once at the end.
        formed = None
        deadline = t0 + args.form_timeout
        while time.monotonic() < deadline:
            if all(len(node.peers_up()) == n - 1 for node in nodes):
                seen = time.monotonic() - t0
                if all(node.links() == n - 1 for node in nodes):
                    formed = seen
                    break
            time.sleep(0.1)
        row["started_s"] = round(started, 2)
        row["formed_s"] = round(formed, 2) if formed is not None else None
        logs_at_form = [node.log_text() for node in nodes]
        row["drops_forming"], row["timeouts_forming"] = drop_reasons(logs_at_form)
        if formed is None:
            row["error"] = f"mesh not formed within {args.form_timeout} s"
            return row

        if args.stress == "stop":
            stopper = StopBursts(nodes, args.seed)

        # Idle: CPU and peer bytes, nothing else running (skipped under stress).
        time.sleep(1.0)
        if stopper is None:
            before = [node.scrape() for node in nodes]
            b_ticks = sum(node.cpu_ticks() for node in nodes)
            t1 = time.monotonic()
            time.sleep(args.idle_seconds)
            e_ticks = sum(node.cpu_ticks() for node in nodes)
            t2 = time.monotonic()
            after = [node.scrape() for node in nodes]
            row["idle_cpu_pct"] = round(100.0 * (e_ticks - b_ticks) / CLK / (t2 - t1), 1)
            sent = [a.get("tcp_chat_bytes_out_total", 0) - b.get("tcp_chat_bytes_out_total", 0)
                    for a, b in zip(after, before)]
            row["peer_bytes_per_node_s"] = round(statistics.mean(sent) / (t2 - t1))

        # Logins, one at a time, to each node in turn.
        lat = []
        for k in range(args.logins):
            node = nodes[k % n]
            s = Session(node.port, f"l{k}", "lobby")
            t = time.monotonic()
            reply = s.line(t + 20)
            lat.append((time.monotonic() - t) * 1000)
            s.close()
            if reply != "200":
                row.setdefault("errors", []).append(f"login l{k} on node {node.index}: {reply}")
        lat.sort()
        row["login_p50_ms"] = round(lat[len(lat) // 2], 2)
        row["login_p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)

        # Races: one name, two nodes, at once.
        rng = random.Random(args.seed)
        bad_races = 0
        for k in range(args.races):
            a, b = rng.sample(range(n), 2)
            sa = Session(nodes[a].port, f"race{k}", "lobby")
            sb = Session(nodes[b].port, f"race{k}", "lobby")
            d = time.monotonic() + 30
            replies = sorted([sa.line(d), sb.line(d)])
            if replies != ["200", "403"]:
                bad_races += 1
                row.setdefault("errors", []).append(f"race{k} on nodes {a},{b}: {replies}")
            sa.close()
            sb.close()
        row["races"] = f"{args.races - bad_races}/{args.races}"

        # Chat: one member per node, a sender on node 0.
        members = []
        for node in nodes:
            s = Session(node.port, f"m{node.index}", "scale")
            members.append(s)
        for s in members:
            r = s.line(time.monotonic() + 30)
            if r != "200":
                row.setdefault("errors", []).append(f"member login: {r}")
        # Every node must route the room to every other before the burst: wait until a
        # probe from node 0 reaches them all (bounded).
        probe_deadline = time.monotonic() + 30
        got_probe = [False] * n
        got_probe[0] = True
        k = 0
        while not all(got_probe) and time.monotonic() < probe_deadline:
            members[0].sock.sendall(f"probe {k}\n".encode())
            for i, s in enumerate(members):
                if got_probe[i]:
                    continue
                try:
                    while True:
                        line = s.line(time.monotonic() + 0.3)
                        if line.startswith("m0 - probe"):
                            got_probe[i] = True
                            break
                except TimeoutError:
                    pass
            k += 1
        # Drain further probes.
        for i, s in enumerate(members[1:], 1):
            try:
                while True:
                    s.line(time.monotonic() + 0.2)
            except TimeoutError:
                pass
        t = time.monotonic()
        burst = "".join(f"chat {j}\n" for j in range(args.messages)).encode()
        members[0].sock.sendall(burst)
        ok = True
        last = t
        received = []
        for i, s in enumerate(members[1:], 1):
            got = []
            d = time.monotonic() + 30
            try:
                while len(got) < args.messages:
                    line = s.line(d)
                    if line.startswith("m0 - chat "):
                        got.append(int(line[len("m0 - chat "):]))
            except (TimeoutError, ConnectionError):
                pass
            last = max(last, time.monotonic())
            received.append(got)
        # Exactly once, in order: nothing more may follow (one bounded wait for all).
        time.sleep(0.2)
        for i, (s, got) in enumerate(zip(members[1:], received), 1):
            try:
                while True:
                    extra = s.line(time.monotonic() + 0.01)
                    if extra.startswith("m0 - chat"):
                        got.append(-1)
            except (TimeoutError, ConnectionError):
                pass
            if got != list(range(args.messages)):
                ok = False
                row.setdefault("errors", []).append(
                    f"member on node {i} got {len(got)} messages, not exactly 0..{args.messages - 1} in order")
        row["chat"] = "exact" if ok else "WRONG"
        row["chat_ms"] = round((last - t) * 1000, 1)
        for s in members:
            s.close()

        # Kill -9 a member's node; time until its name is granted elsewhere.
        victim = nodes[n // 2]
        victim_id = node_id(victim)
        s = Session(victim.port, "victim", "lobby")
        if s.line(time.monotonic() + 20) != "200":
            row.setdefault("errors", []).append("victim login refused")
        other = nodes[(n // 2 + 1) % n]
        victim.proc.send_signal(signal.SIGCONT)
        victim.proc.kill()
        t = time.monotonic()
        freed = None
        while time.monotonic() < t + args.kill_timeout:
            s2 = Session(other.port, "victim", "lobby")
            try:
                r = s2.line(time.monotonic() + args.kill_timeout)
            except (TimeoutError, ConnectionError):
                r = "?"
            s2.close()
            if r == "200":
                freed = time.monotonic() - t
                break
            time.sleep(0.05)
        s.close()
        row["kill_free_s"] = round(freed, 2) if freed is not None else None
        if freed is None:
            row.setdefault("errors", []).append(f"killed node's name not free after {args.kill_timeout} s")
        if stopper:
            stopper.stop()
        live = [node for node in nodes if node is not victim]
        logs = [node.log_text() for node in live]
        total, timeouts = drop_reasons(logs)
        prior_total, prior_timeouts = drop_reasons(logs_at_form[:victim.index] + logs_at_form[victim.index + 1:])
        # The victim's links going down are expected (n-1 of them).
        row["drops_after"] = max(0, total - prior_total - (n - 1))
        row["false_deaths"] = false_deaths(live, victim_id)
        return row
    finally:
        if stopper:
            stopper.stop()
        for node in nodes:
            node.stop()
        if not args.keep:
            for f in os.listdir(workdir):
                os.unlink(os.path.join(workdir, f))
            os.rmdir(workdir)
        else:
            row["logs"] = workdir


class StopBursts:
    """Stops a few random nodes with SIGSTOP for a while, again and again (starvation)."""

    def __init__(self, nodes, seed, burst=3, stop_ms=(200, 900), gap_ms=(300, 1200)):
        import threading
        self.nodes, self.burst, self.stop_ms, self.gap_ms = nodes, burst, stop_ms, gap_ms
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.stopped = []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.done.is_set():
            self.stopped = self.rng.sample(self.nodes, min(self.burst, len(self.nodes)))
            for node in self.stopped:
                if node.proc.poll() is None:
                    node.proc.send_signal(signal.SIGSTOP)
            self.done.wait(self.rng.uniform(*self.stop_ms) / 1000)
            for node in self.stopped:
                if node.proc.poll() is None:
                    node.proc.send_signal(signal.SIGCONT)
            self.stopped = []
            self.done.wait(self.rng.uniform(*self.gap_ms) / 1000)

    def stop(self):
        self.done.set()
        self.thread.join(timeout=5)
        for node in self.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)


def fmt(v, unit=""):
    return "–" if v is None else f"{v}{unit}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", default="4,16,32,64,100")
    p.add_argument("--binary", default=os.path.join(ROOT, ".build/release/tcp_chat"))
    p.add_argument("--form-timeout", type=float, default=90)
    p.add_argument("--idle-seconds", type=float, default=10)
    p.add_argument("--logins", type=int, default=200)
    p.add_argument("--races", type=int, default=20)
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--kill-timeout", type=float, default=20)
    p.add_argument("--stress", choices=["pin", "stop"], help="pin: every node on CPU 0; stop: SIGSTOP bursts")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check", action="store_true", help="exit 1 when a correctness property fails")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the nodes' logs")
    p.add_argument("--node-arg", action="append", default=[], help="extra argument for every node")
    args = p.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"scale.py: no binary at {args.binary} (swift build -c release)")

    rows = []
    for n in [int(x) for x in args.nodes.split(",")]:
        row = run(n, args)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{n:>4} nodes: started {fmt(row.get('started_s'), ' s')}, formed {fmt(row.get('formed_s'), ' s')}"
                  f" | drops forming {row.get('drops_forming')} ({row.get('timeouts_forming')} timeouts), after {fmt(row.get('drops_after'))}"
                  f" | idle cpu {fmt(row.get('idle_cpu_pct'), ' %')}, {fmt(row.get('peer_bytes_per_node_s'), ' B/s')} per node"
                  f" | login p50/p99 {fmt(row.get('login_p50_ms'))}/{fmt(row.get('login_p99_ms'))} ms"
                  f" | races {fmt(row.get('races'))}"
                  f" | chat {fmt(row.get('chat'))} {fmt(row.get('chat_ms'), ' ms')}"
                  f" | kill -9 free {fmt(row.get('kill_free_s'), ' s')}"
                  f" | false deaths {fmt(row.get('false_deaths'))}", flush=True)
            for e in row.get("errors", [])[:10]:
                print(f"      error: {e}", flush=True)
            if row.get("error"):
                print(f"      error: {row['error']}", flush=True)
    if args.check:
        bad = [r for r in rows if r.get("error") or r.get("errors") or r.get("false_deaths")]
        if bad:
            print("scale.py: FAILED", file=sys.stderr)
            sys.exit(1)
        print("scale.py: every check passed")


if __name__ == "__main__":
    main()
