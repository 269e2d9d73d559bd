#!/usr/bin/env python3
"""Draws docs/img/throughput.png from a scripts/perf-sweep.sh JSONL file:
delivered messages per second vs room size (tcp_chat and the C reference relay) and vs
the number of nodes the room spans.  Needs matplotlib (pip install matplotlib).

    python3 scripts/perf-chart.py sweep.jsonl docs/img/throughput.png
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

points = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2] if len(sys.argv) > 2 else "docs/img/throughput.png"
series = {}
for p in points:
    series.setdefault(p["series"], []).append((p["x"], p["delivered_per_s"] / 1e6))

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
for name, style in (("tcp_chat room size", "o-"), ("limitrelay room size", "s--")):
    xs = sorted(series.get(name, []))
    if xs:
        left.plot([x for x, _ in xs], [y for _, y in xs], style, label=name.replace(" room size", ""))
left.set_xscale("log")
left.set_xlabel("members in the room (10 senders, flat-out)")
left.set_ylabel("delivered messages / s (millions)")
left.set_title("One node: throughput vs room size")
left.grid(True, alpha=0.3)
left.legend()

xs = sorted(series.get("tcp_chat nodes", []))
if xs:
    right.bar([str(x) for x, _ in xs], [y for _, y in xs], color="#4c72b0")
    for i, (_, y) in enumerate(xs):
        right.text(i, y, f"{y:.1f} M", ha="center", va="bottom")
right.set_xlabel("nodes the room's 100 members are spread over (all nodes on one core)")
right.set_ylabel("delivered messages / s (millions)")
right.set_title("Cluster: throughput vs node count")
right.grid(True, axis="y", alpha=0.3)
fig.suptitle("tcp_chat on a 2-core machine: server(s) on CPU 0, load on CPU 1", fontsize=10)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
