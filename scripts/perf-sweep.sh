#!/usr/bin/env bash
# Throughput vs room size and vs node count, for docs/performance.md's chart.
#
#   scripts/perf-sweep.sh OUT.jsonl [BINARY]      # then: python3 scripts/perf-chart.py OUT.jsonl docs/img/throughput.png
#
# Uses the C load generator and reference relay of ../shared/bench (compiled on the fly).
# Servers are pinned to CPU 0, the load to CPU 1. Each point is one 6 s run; compare only
# points of one sweep (this machine is shared and noisy). Only loopback; everything it
# starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: perf-sweep.sh OUT.jsonl [BINARY]}
bin=${2:-${TCP_CHAT_BIN:-.build/release/tcp_chat}}
bench=${BENCH_DIR:-../shared/bench}
work=$(mktemp -d /tmp/tcp_chat-sweep.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
cc -O2 -o "$work/loadgen" "$bench/loadgen.c"
cc -O2 -o "$work/limitrelay" "$bench/limitrelay.c"
ulimit -n 20000 2>/dev/null || true
: > "$out"

start() {  # label, command... ; sets $addr $pid
    local label=$1; shift
    taskset -c 0 "$@" >"$work/$label.out" 2>"$work/$label.err" &
    pid=$!; pids+=($pid)
    for _ in $(seq 100); do grep -q listening "$work/$label.out" 2>/dev/null && break; sleep 0.05; done
    addr=$(sed -n 's/^listening on //p' "$work/$label.out" | head -1)
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
run() {  # series, x, targets...
    local series=$1 x=$2; shift 2
    taskset -c 1 "$work/loadgen" --proto tcpchat "$@" --rooms 1 --senders 10 --rate 0 --size 64 \
        --warmup 2 --duration 6 --drain 3 --connect-timeout 30 --label "$series" \
        | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["series"]=sys.argv[1]; d["x"]=int(sys.argv[2]); print(json.dumps(d))' "$series" "$x" >> "$out"
    tail -1 "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["series"], "x=%d" % d["x"], "delivered/s=%.0f" % d["delivered_per_s"], "lost=%d" % d["lost"], "p99=%sus" % d["lat_us"]["p99"])'
}

# Room size: one room of N members, 10 senders flat-out.
for n in 10 100 1000 5000; do
    start tcp "$bin" server -a 127.0.0.1 -p 0 --rate-limit 0
    run "tcp_chat room size" "$n" --target "$addr" --clients "$n"
    stop_all
    start ref "$work/limitrelay" -a 127.0.0.1 -p 0
    run "limitrelay room size" "$n" --target "$addr" --clients "$n"
    stop_all
done

# Node count: 100 members of one room spread over 1, 2 or 3 linked nodes (all on CPU 0).
for k in 1 2 3; do
    start n1 "$bin" server -a 127.0.0.1 -p 0 --rate-limit 0; first=$addr; targets=(--target "$addr")
    for i in $(seq 2 "$k"); do
        start "n$i" "$bin" server -a 127.0.0.1 -p 0 --rate-limit 0 --peer "$first"; targets+=(--target "$addr")
    done
    if [ "$k" -gt 1 ]; then
        "$work/loadgen" --proto tcpchat --mode probe --target "$first" --send-target "$addr" --connect-timeout 15 >/dev/null
    fi
    run "tcp_chat nodes" "$k" "${targets[@]}" --clients 100
    # Our own load tool on the same cluster, same load: it should report the same order.
    taskset -c 1 "$bin" bench "${targets[@]}" --clients 100 --rooms 1 --senders 10 --size 64 \
        --warmup 2 --duration 6 --drain 3 --json \
        | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["series"]="tcp_chat bench, nodes"; d["x"]=int(sys.argv[1]); print(json.dumps(d))' "$k" >> "$out"
    tail -1 "$out" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["series"], "x=%d" % d["x"], json.dumps({k: v for k, v in d.items() if k not in ("series", "x")})[:300])'
    stop_all
done
echo "sweep: $(wc -l < "$out") points in $out"
