#!/usr/bin/env python3
"""TLS against plaintext, in one sitting, on this machine (docs/performance.md, "TLS").

    python3 scripts/tls-bench.py --bin .build/release/tcp_chat [--duration 8] [--rounds 2]

1. fanout: one node, `tcp_chat bench` (100 clients, one room, 10 senders flat-out) in
   plaintext and with every client on TLS, alternated; ratio of deliveries/s.
2. cluster-fanout: three nodes, senders on A, receivers spread over A, B, C; the peer links
   plaintext, then mutual TLS (clients plaintext both times); ratio of deliveries/s.
3. idle memory: the node's RSS with N idle logged-in sessions, plaintext and TLS; the
   difference per session.
4. logins per second: 1,000 clients connecting and logging in (100 at a time), plaintext
   and TLS (each a TCP connect, a TLS handshake, a login).

Standard library only; makes its CA and certificate with `openssl` in a temp folder.
Prints one line per measurement and a summary; --json FILE writes the figures.
"""
import argparse
import json
import os
import resource
import select
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "node.key", cwd=d)
    openssl("req", "-new", "-key", "node.key", "-out", "node.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "node.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1", "-days", "2",
            "-extfile", "node.ext", "-out", "node.pem", cwd=d)
    return [f"--tls-cert={d}/node.pem", f"--tls-key={d}/node.key", f"--tls-ca={d}/ca.pem"]


class Node:
    def __init__(self, binary, flags, logdir, name):
        self.out = open(os.path.join(logdir, f"{name}.out"), "w+")
        self.err = open(os.path.join(logdir, f"{name}.log"), "w")
        self.p = subprocess.Popen([binary, "server", "-a", "127.0.0.1", "-p", "0", "--rate-limit", "0",
                                   "--log-level", "warning", *flags], stdout=self.out, stderr=self.err)
        deadline = time.time() + 15
        while time.time() < deadline:
            self.out.seek(0)
            line = self.out.readline()
            if line.startswith("listening on "):
                self.address = line.split()[-1]
                self.port = int(self.address.rsplit(":", 1)[1])
                return
            time.sleep(0.05)
        raise SystemExit(f"{name} did not start")

    def rss_kib(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    def stop(self):
        self.p.terminate()
        self.p.wait(10)


def bench(binary, args):
    r = subprocess.run([binary, "bench", "--json", "--no-progress", *args], capture_output=True, text=True)
    try:
        j = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"bench failed: {r.stdout}\n{r.stderr}")
    if not j.get("ok"):
        raise SystemExit(f"bench reported a failure: {j.get('failures')}")
    return j


def fanout(a, binary, tls_flags, ca):
    node = Node(binary, tls_flags, a.logdir, "fanout")
    base = ["--target", f"localhost:{node.port}", "--clients", "100", "--senders", "10",
            "--duration", str(a.duration), "--warmup", "2"]
    plain, tls = [], []
    for r in range(a.rounds):
        for kind in ("plain", "tls"):
            j = bench(binary, base + (["--tls-ca", ca] if kind == "tls" else []))
            (plain if kind == "plain" else tls).append(j["delivered_per_s"])
            print(f"fanout round {r + 1} {kind:5}: {j['delivered_per_s']:>12,.0f} deliveries/s  p99 {j['lat_us']['p99'] / 1000:.1f} ms", flush=True)
    node.stop()
    return statistics.median(plain), statistics.median(tls)


def cluster_fanout(a, binary, tls_flags):
    out = {}
    for kind in ("plain", "tls"):
        flags = tls_flags if kind == "tls" else []
        n1 = Node(binary, flags, a.logdir, f"cf-{kind}-a")
        n2 = Node(binary, flags + ["--peer", n1.address], a.logdir, f"cf-{kind}-b")
        n3 = Node(binary, flags + ["--peer", n1.address], a.logdir, f"cf-{kind}-c")
        time.sleep(3)  # links up (each node logs them; 3 s is ample on loopback)
        rates = []
        for r in range(a.rounds):
            j = bench(binary, ["--target", n1.address, "--target", n2.address, "--target", n3.address,
                               "--send-target", n1.address, "--clients", "99", "--senders", "10",
                               "--duration", str(a.duration), "--warmup", "2"])
            rates.append(j["delivered_per_s"])
            print(f"cluster-fanout round {r + 1} peer links {kind:5}: {j['delivered_per_s']:>12,.0f} deliveries/s", flush=True)
        out[kind] = statistics.median(rates)
        for n in (n3, n2, n1):
            n.stop()
    return out["plain"], out["tls"]


def idle_memory(a, binary, tls_flags, ca):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(a.sessions, hard - 100)
    node = Node(binary, tls_flags, a.logdir, "idle")
    ctx = ssl.create_default_context(cafile=ca)
    # Warm: one session of each kind, so both paths' code and tables are loaded.
    result = {}
    socks = []
    for kind in ("plain", "tls"):
        s = socket.create_connection(("127.0.0.1", node.port))
        if kind == "tls":
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(f"warm{kind}_idle\n".encode())
        s.recv(16)
        socks.append(s)
    time.sleep(0.5)
    for kind in ("plain", "tls"):
        before = node.rss_kib()
        opened = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", node.port))
            if kind == "tls":
                s = ctx.wrap_socket(s, server_hostname="localhost")
            s.sendall(f"{kind}{i}_idle{i % 50}\n".encode())
            opened.append(s)
        for s in opened:
            if s.recv(16)[:3] != b"200":
                raise SystemExit("idle session not logged in")
        time.sleep(1.0)
        after = node.rss_kib()
        result[kind] = (after - before) * 1024 / n
        print(f"idle sessions {kind:5}: {n} sessions, RSS {before} -> {after} KiB, {result[kind]:,.0f} bytes each", flush=True)
        for s in opened:
            s.close()
        time.sleep(1.0)
    node.stop()
    return n, result["plain"], result["tls"]


def logins(a, binary, tls_flags, ca):
    node = Node(binary, tls_flags, a.logdir, "logins")
    out = {"plain": [], "tls": []}
    for r in range(a.rounds):
        for kind in ("plain", "tls"):
            j = bench(binary, ["--target", f"127.0.0.1:{node.port}", "--clients", "1000", "--rooms", "100",
                               "--senders", "1", "--conn-par", "100", "--duration", "0.5", "--warmup", "0",
                               "--drain", "0.5", "--name-prefix", f"l{r}{kind}"] + (["--tls-ca", ca] if kind == "tls" else []))
            out[kind].append(j["logins_per_s"])
            print(f"logins round {r + 1} {kind:5}: {j['logins_per_s']:>10,.0f} logins/s (1000 clients, 100 at a time)", flush=True)
    node.stop()
    return statistics.median(out["plain"]), statistics.median(out["tls"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    binary = os.path.abspath(a.bin)
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as d:
        a.logdir = d
        tls_flags = make_certs(d)
        ca = os.path.join(d, "ca.pem")
        fp, ft = fanout(a, binary, tls_flags, ca)
        cp, ct = cluster_fanout(a, binary, tls_flags)
        n, mp, mt = idle_memory(a, binary, tls_flags, ca)
        lp, lt = logins(a, binary, tls_flags, ca)
    figures = {
        "fanout_plain_per_s": fp, "fanout_tls_per_s": ft, "fanout_ratio": ft / fp,
        "cluster_fanout_plain_links_per_s": cp, "cluster_fanout_tls_links_per_s": ct, "cluster_fanout_ratio": ct / cp,
        "idle_sessions": n, "idle_bytes_per_plain_session": mp, "idle_bytes_per_tls_session": mt,
        "idle_tls_extra_bytes_per_session": mt - mp,
        "logins_plain_per_s": lp, "logins_tls_per_s": lt,
    }
    print()
    print(f"fanout, every client on TLS / plaintext:      {ft:,.0f} / {fp:,.0f} = {ft / fp:.2f} (target >= 0.5)")
    print(f"cluster-fanout, TLS peer links / plaintext:   {ct:,.0f} / {cp:,.0f} = {ct / cp:.2f} (target >= 0.7)")
    print(f"idle memory per session, {n} sessions:        TLS {mt:,.0f} B, plaintext {mp:,.0f} B, TLS extra {mt - mp:,.0f} B (target TLS <= 16 KiB)")
    print(f"logins per second (connect + login):          TLS {lt:,.0f}/s, plaintext {lp:,.0f}/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
