#!/usr/bin/env python3
"""Login latency on one node against a three-node cluster, measured in one run.

    scripts/login-latency.py [--bin .build/release/tcp_chat] [--reps 3] [--duration 10]

The C load generator of ../shared/bench in `logins` mode (4 clients in a closed loop:
connect, handshake, 200, close, again) against one node, then against three linked nodes
with the clients spread over them, alternating, `--reps` times. Nodes are pinned to CPU 0
and the load to CPU 1, as in the harness. A login on a cluster node costs a claim: one
round trip to every other node (docs/cluster-protocol.md §5). Prints the medians of each
percentile and the ratio cluster / single. Loopback only; everything started is stopped.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

def start(binary, work, name, extra):
    out = open(os.path.join(work, f"{name}.out"), "w+")
    err = open(os.path.join(work, f"{name}.err"), "w")
    p = subprocess.Popen(["taskset", "-c", "0", binary, "server", "-a", "127.0.0.1", "-p", "0",
                          "--rate-limit", "0", "--log-level", "warning"] + extra, stdout=out, stderr=err)
    deadline = time.time() + 20
    while time.time() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                return p, line[len("listening on "):]
        time.sleep(0.05)
    sys.exit(f"{name} did not start")

def loadgen(lg, *args):
    r = subprocess.run(["taskset", "-c", "1", lg, "--proto", "tcpchat", *args], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if not lines:
        sys.exit(f"loadgen printed nothing: {r.stderr[-2000:]}")
    return json.loads(lines[-1])

def run(binary, work, lg, nodes, duration, rep):
    procs = []
    try:
        p, a = start(binary, work, f"r{rep}n{nodes}a", [])
        procs.append(p)
        addrs = [a]
        for i in range(1, nodes):
            p, x = start(binary, work, f"r{rep}n{nodes}{i}", ["--peer", a])
            procs.append(p)
            addrs.append(x)
        if nodes > 1:
            # Every pair linked: a message from each node reaches the first one.
            for x in addrs[1:]:
                loadgen(lg, "--mode", "probe", "--target", a, "--send-target", x, "--duration", "20",
                        "--name-prefix", f"probe{rep}{x.rsplit(':', 1)[1]}")
            time.sleep(1.0)  # the last HELLOs and STATEs settle
        targets = [t for x in addrs for t in ("--target", x)]
        return loadgen(lg, "--mode", "logins", "--concurrency", "4", "--rooms", "10", "--warmup", "1",
                       "--duration", str(duration), "--name-prefix", f"l{rep}n{nodes}x", *targets)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release/tcp_chat")
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=3)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="tcp_chat-logins.")
    lg = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", lg, os.path.join(a.bench, "loadgen.c")], check=True)
    res = {1: [], a.nodes: []}
    for rep in range(a.reps):
        order = [1, a.nodes] if rep % 2 == 0 else [a.nodes, 1]
        for n in order:
            r = run(binary, work, lg, n, a.duration, rep)
            res[n].append(r)
            l = r["lat_us"]
            print(f"rep {rep + 1} nodes {n}: {r['logins_per_s']:.0f} logins/s, p50 {l['p50']} us, "
                  f"p99 {l['p99']} us, refused {r['refused']}, timeouts {r['login_timeouts']}", flush=True)
    print()
    print(f"{'nodes':>5} {'logins/s':>9} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'max us':>8}")
    med = {}
    for n, rs in res.items():
        m = {k: statistics.median(r["lat_us"][k] for r in rs) for k in ("p50", "p90", "p99", "max")}
        m["rate"] = statistics.median(r["logins_per_s"] for r in rs)
        med[n] = m
        print(f"{n:>5} {m['rate']:>9.0f} {m['p50']:>8.0f} {m['p90']:>8.0f} {m['p99']:>8.0f} {m['max']:>8.0f}")
    ratio = med[a.nodes]["p99"] / med[1]["p99"]
    print(f"login p99, {a.nodes} nodes / 1 node: {ratio:.2f}x (medians of {a.reps} reps)")
    bad = sum(r["refused"] + r["login_timeouts"] for rs in res.values() for r in rs)
    if bad:
        print(f"{bad} logins refused or timed out")
        sys.exit(1)

if __name__ == "__main__":
    main()
