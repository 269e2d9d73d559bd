#!/usr/bin/env python3
"""Memory a node spends on two attacks of issue 10 (docs/hardening.md, docs/security.md):

1. 16 unauthenticated peer handshakes (secret mode), each sending 8 MiB without a newline;
2. a login waiting on a stopped peer (SIGSTOP) with a flood of `x\\n` behind it for 3 s.

    python3 scripts/attack-memory.py --bin .build/release/tcp_chat

Prints the node's RSS growth for each (VmRSS from /proc) and how much the node accepted.
A measurement, not a test: the tests (AttackTests) assert bounds.
"""
import argparse, os, re, signal, socket, subprocess, tempfile, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary, *flags):
    p = subprocess.Popen([binary, "server", "-a", "127.0.0.1", "-p", "0", *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r":(\d+)$", p.stdout.readline().strip()).group(1))
    return p, port


def preauth(binary, secret):
    node, port = start(binary, "--cluster-secret-file", secret, "--handshake-timeout", "10")
    try:
        time.sleep(0.3)
        base = rss_kib(node.pid)
        socks = []
        for i in range(16):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"TCPCHAT-PEER/3 HELLO %016x 127.0.0.1:1 nonce%04d secret\n" % (i + 1, i))
            s.settimeout(2)
            socks.append(s)
        chunk = b"x" * (1 << 20)
        sent = 0
        for s in socks:
            for _ in range(8):
                try:
                    s.sendall(chunk)
                    sent += len(chunk)
                except OSError:
                    break
        time.sleep(0.5)
        grown = rss_kib(node.pid) - base
        open_after = 0
        for s in socks:
            s.settimeout(3)
            try:
                while s.recv(65536):
                    pass          # the ERROR line, then EOF
            except socket.timeout:
                open_after += 1
            except OSError:
                pass              # reset: closed
        print(f"16 pre-auth peer handshakes: sent {sent >> 20} MiB, node RSS +{grown / 1024:.1f} MiB, "
              f"{open_after} still open")
    finally:
        node.terminate(); node.wait(10)


def pending_flood(binary):
    a, pa = start(binary, "--peer-timeout-ms", "30000")
    b, _ = start(binary, "--peer", f"127.0.0.1:{pa}", "--peer-timeout-ms", "30000")
    try:
        time.sleep(1.5)
        b.send_signal(signal.SIGSTOP)
        base = rss_kib(a.pid)
        s = socket.create_connection(("127.0.0.1", pa))
        s.sendall(b"eve_r\n")
        s.setblocking(False)
        chunk = b"x\n" * (1 << 19)
        sent, end = 0, time.time() + 3
        while time.time() < end:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        grown = rss_kib(a.pid) - base
        print(f"a login waiting on a stopped peer: client sent {sent / (1 << 20):.1f} MiB in 3 s, node RSS +{grown / 1024:.1f} MiB")
        s.close()
    finally:
        b.send_signal(signal.SIGCONT)
        for p in (a, b):
            p.terminate(); p.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
        f.write(os.urandom(16).hex() + "\n"); f.flush()
        preauth(args.bin, f.name)
    pending_flood(args.bin)


if __name__ == "__main__":
    main()
