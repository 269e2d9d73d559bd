#!/usr/bin/env bash
# Every scenario of ../shared/bench against the reference relay and the peers, back to
# back in one sitting, as quoted in docs/performance.md. Prints the harness's markdown
# tables; the raw results go to OUT.jsonl.
#
#   scripts/compare-all.sh [OUT_PREFIX] [BINARY]    # default /tmp/compare-all, .build/release/tcp_chat
#
# Needs the peers the harness adapts (ngircd, inspircd, nats-server) installed to compare
# with them; a missing one shows as "n/a". About 30 minutes on 2 cores; run it on an
# otherwise idle machine (the harness pins servers to CPU 0 and the load to CPU 1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/compare-all}
bin=$(realpath "${2:-.build/release/tcp_chat}")
bench=$(realpath "${BENCH_DIR:-../shared/bench}")
[ -x "$bin" ] || { echo "compare-all: no binary at $bin (swift build -c release)" >&2; exit 2; }
export TCP_CHAT_BIN=$bin BENCH_BUILD_DIR=${BENCH_BUILD_DIR:-/tmp/benchbuild}
mkdir -p "$BENCH_BUILD_DIR"
: >"$out.jsonl"
peers="ngircd inspircd nats"
# The fixed-load scenarios' targets are ratios to limitrelay; FIXED_PEERS="" leaves the peers
# out of them (a third of the time) when only those ratios are wanted.
fixed_peers=${FIXED_PEERS-$peers}
{
    echo "# compare-all $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(git rev-parse --short HEAD)"
    echo
    # Flat-out scenarios: the per-client rate limit off (TCP_CHAT_ARGS), as the issue asks.
    TCP_CHAT_ARGS="--rate-limit 0" "$bench/compare" fanout limitrelay tcp_chat $peers --jsonl "$out.jsonl"
    TCP_CHAT_ARGS="--rate-limit 0" "$bench/compare" cluster-fanout tcp_chat nats ngircd --jsonl "$out.jsonl"
    # Fixed-load scenarios: default flags.
    "$bench/compare" rooms limitrelay tcp_chat $fixed_peers --jsonl "$out.jsonl"
    "$bench/compare" latency limitrelay tcp_chat $fixed_peers --jsonl "$out.jsonl"
    "$bench/compare" logins limitrelay tcp_chat $fixed_peers --jsonl "$out.jsonl"
    "$bench/compare" idle limitrelay tcp_chat $fixed_peers --jsonl "$out.jsonl"
} | tee "$out.md"
