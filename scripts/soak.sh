#!/usr/bin/env bash
# Soak: 1,000 clients on a 3-node cluster chatting at a steady rate for a long time
# (default 30 min). Every minute it samples each node's RSS and open fds, and measures
# latency with a short probe load beside the steady one; at the end the steady load
# reports what it lost. Prints a table and a summary line comparing start and end.
#
#   scripts/soak.sh [MINUTES] [BINARY]        # default 30, .build/release/tcp_chat
#
# Not part of CI. Uses the C load generator of ../shared/bench (compiled on the fly).
# Everything it starts is killed on exit; only loopback is used.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
bin=${2:-${TCP_CHAT_BIN:-.build/release/tcp_chat}}
bench=${BENCH_DIR:-../shared/bench}
work=$(mktemp -d /tmp/tcp_chat-soak.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
[ -x "$bin" ] || { echo "soak: no binary at $bin (swift build -c release)" >&2; exit 2; }
cc -O2 -o "$work/loadgen" "$bench/loadgen.c"
ulimit -n 20000 2>/dev/null || true

start_node() {  # name, extra args... ; sets $addr and $pid
    local name=$1; shift
    "$bin" server -a 127.0.0.1 -p 0 --rate-limit 0 "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=($pid)
    for _ in $(seq 100); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.05; done
    addr=$(sed -n 's/^listening on //p' "$work/$name.out")
}
start_node a; a=$addr; apid=$pid
start_node b --peer "$a"; b=$addr; bpid=$pid
start_node c --peer "$a"; c=$addr; cpid=$pid
echo "soak: nodes $a $b $c (pids $apid $bpid $cpid), ${minutes} min, logs in $work"
# Wait until a message crosses the cluster.
"$work/loadgen" --proto tcpchat --mode probe --target "$a" --send-target "$c" --connect-timeout 10 >/dev/null

# The steady load: 1,000 clients in 100 rooms of 10, spread over the three nodes, every
# client sending 5 msg/s (5,000 msg/s in, 50,000 deliveries/s).
# The C load generator runs at most 10 minutes: the steady load is a chain of runs of up
# to 10 minutes each (the clients log in again between them, a login wave every 10 min).
duration=$((minutes * 60))
(
    left=$duration; n=0
    while [ "$left" -gt 0 ]; do
        seg=$(( left > 600 ? 600 : left ))
        "$work/loadgen" --proto tcpchat --target "$a" --target "$b" --target "$c" --clients 1000 --rooms 100 \
            --senders 10 --rate 5 --size 64 --warmup 5 --duration "$seg" --drain 5 --connect-timeout 30 \
            --name-prefix "soak${n}x" --room-prefix soakroom --pid "$apid" --pid "$bpid" --pid "$cpid" \
            >"$work/steady-$n.json" 2>"$work/steady-$n.err" || true
        left=$(( left - seg )); n=$(( n + 1 ))
    done
) &
steady=$!
pids+=($steady)

sample() {  # minute
    local rss fds line
    line="$1"
    for p in $apid $bpid $cpid; do
        rss=$(awk '/VmRSS/ {print $2}' /proc/$p/status)
        fds=$(ls /proc/$p/fd | wc -l)
        line="$line $rss $fds"
    done
    # A 10 s probe beside the steady load: 20 clients in 2 rooms across the nodes, 5 msg/s each.
    local probe
    probe=$("$work/loadgen" --proto tcpchat --target "$a" --target "$b" --target "$c" --clients 20 --rooms 2 \
        --senders 20 --rate 5 --size 64 --warmup 1 --duration 10 --drain 2 --name-prefix "probe$1x" --room-prefix "probe$1r" 2>/dev/null)
    line="$line $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); l=d["lat_us"]; print(l["p50"], l["p99"], d["lost"])' "$probe")"
    echo "$line" | tee -a "$work/samples.txt"
}

echo "minute rssA fdsA rssB fdsB rssC fdsC p50us p99us probe_lost" | tee "$work/samples.txt"
sleep 10
for m in $(seq 0 $((minutes - 1))); do
    sample "$m"
    sleep $((60 - 13))
done
wait $steady || true
python3 - "$work/samples.txt" "$work"/steady-*.json <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:] if l.strip()]
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sys.argv[2:]]
first, last = rows[0], rows[-1]
def kb(r): return [int(r[1]), int(r[3]), int(r[5])]
def fds(r): return [int(r[2]), int(r[4]), int(r[6])]
print(f"samples: {len(rows)} minutes; steady load: {len(runs)} runs")
print(f"RSS KiB start {kb(first)} end {kb(last)}; fds start {fds(first)} end {fds(last)}")
print(f"probe p99 us start {first[8]} end {last[8]}; p50 start {first[7]} end {last[7]}")
tot = {k: sum(r[k] for r in runs) for k in ("lost", "duplicated", "reordered", "errors", "delivered")}
print(f"steady load: sent/s {sum(r['sent_per_s'] for r in runs)/len(runs):.0f} "
      f"delivered/s {sum(r['delivered_per_s'] for r in runs)/len(runs):.0f} delivered {tot['delivered']} "
      f"lost {tot['lost']} duplicated {tot['duplicated']} reordered {tot['reordered']} errors {tot['errors']}; "
      f"p99 per run (us) {[r['lat_us']['p99'] for r in runs]}")
sys.exit(1 if tot['lost'] or tot['duplicated'] or tot['reordered'] or tot['errors'] else 0)
PY
