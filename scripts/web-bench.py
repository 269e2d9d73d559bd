#!/usr/bin/env python3
"""WebSocket fan-out against TCP fan-out on one node, in one sitting (docs/performance.md).

    scripts/web-bench.py [--rounds 3] [--bin .build/release/tcp_chat] [-- BENCH_ARGS...]

Starts one node (`--rate-limit 0`, pinned to CPU 0 when taskset exists) and runs
`tcp_chat bench` against it (pinned to CPU 1), alternating TCP clients and WebSocket
clients (`--websocket`) for ROUNDS rounds: the fanout scenario by default, 100 clients in
one room, 10 senders flat-out with 32 messages in flight each, 64-byte messages, 5 s
measured after 2 s of warmup. Prints every run's deliveries/s and the ratio of the
medians (WebSocket / TCP). Exits 1 if any run lost, duplicated or reordered a message.
"""
import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--bin", default=".build/release/tcp_chat")
ap.add_argument("bench_args", nargs="*",
                default=["--clients", "100", "--senders", "10", "--size", "64", "--duration", "5", "--warmup", "2"])
a = ap.parse_args()
pin = shutil.which("taskset") is not None
node_cmd = (["taskset", "-c", "0"] if pin else []) + [a.bin, "server", "-a", "127.0.0.1", "-p", "0", "--rate-limit", "0"]
node = subprocess.Popen(node_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    m = re.match(r"listening on (\S+)", node.stdout.readline())
    if not m:
        sys.exit("web-bench: the node did not start")
    target = m.group(1)
    runs = {"tcp": [], "websocket": []}
    ok = True
    for r in range(a.rounds):
        for mode in ("tcp", "websocket"):
            cmd = (["taskset", "-c", "1"] if pin else []) + [a.bin, "bench", "--target", target, "--json", "--no-progress"] \
                + a.bench_args + (["--websocket"] if mode == "websocket" else [])
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            rep = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(rep["delivered_per_s"])
            bad = rep["lost"] + rep["duplicated"] + rep["reordered"] + rep["garbled"] + rep["errors"]
            ok = ok and rep["ok"] and bad == 0
            print(f"round {r + 1} {mode:9} {rep['delivered_per_s'] / 1e6:7.3f} M deliveries/s  "
                  f"p50 {rep['lat_us']['p50'] / 1000:.1f} ms  p99 {rep['lat_us']['p99'] / 1000:.1f} ms  "
                  f"lost {rep['lost']} dup {rep['duplicated']} reordered {rep['reordered']}  "
                  f"bench CPU {rep['loadgen_cpu_util'] * 100:.0f}%", flush=True)
    t, w = statistics.median(runs["tcp"]), statistics.median(runs["websocket"])
    print(f"median: tcp {t / 1e6:.3f} M/s, websocket {w / 1e6:.3f} M/s, ratio websocket/tcp {w / t:.2f}")
    sys.exit(0 if ok else 1)
finally:
    node.terminate()
    node.wait(10)
