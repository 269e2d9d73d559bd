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
left.set_ylim(bottom=0)
left.set_xlabel("members in the room (10 senders, flat-out)")
left.set_ylabel("delivered messages / s (millions)")
left.set_title("One node: throughput vs room size")
left.grid(True, alpha=0.3)
left.legend()

# Grouped bars: the C load generator and `tcp_chat bench` on the same clusters.
groups = [("tcp_chat nodes", "C load generator", "#4c72b0"), ("tcp_chat bench, nodes", "tcp_chat bench", "#dd8452")]
present = [g for g in groups if series.get(g[0])]
width = 0.8 / max(1, len(present))
for j, (name, label, color) in enumerate(present):
    xs = sorted(series[name])
    pos = [i + (j - (len(present) - 1) / 2) * width for i in range(len(xs))]
    right.bar(pos, [y for _, y in xs], width=width, color=color, label=label)
    for p_, (_, y) in zip(pos, xs):
        right.text(p_, y, f"{y:.1f}", ha="center", va="bottom", fontsize=8)
if present:
    right.set_xticks(range(len(series[present[0][0]])), [str(x) for x, _ in sorted(series[present[0][0]])])
    right.legend(title="measured by", fontsize=8)
right.set_xlabel("nodes the room's 100 members are spread over (all nodes on one core)")
right.set_ylabel("delivered messages / s (millions)")
right.set_title("Cluster: throughput vs node count")
right.grid(True, axis="y", alpha=0.3)
fig.suptitle("tcp_chat on a 2-core machine: server(s) on CPU 0, load on CPU 1", fontsize=10)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
