#!/usr/bin/env bash
# Fetches the original tcp_chat (PyPI package cn_tcp_server 0.0.2, an sdist) and unpacks it,
# for the interop tests (Tests/ChatNodeTests/InteropTests.swift run its client against our
# node). Idempotent. Prints the unpacked directory, to be passed as TCP_CHAT_SEED_DIR:
#
#   export TCP_CHAT_SEED_DIR="$(bash .ci/seed.sh)"            # into .build/seed
#   export TCP_CHAT_SEED_DIR="$(bash .ci/seed.sh /tmp/seed)"  # elsewhere
set -euo pipefail

name=cn_tcp_server
version=0.0.2
dir="${1:-.build/seed}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
unpacked="$dir/$name-$version"

if [ ! -f "$unpacked/tcp_chat/__main__.py" ]; then
    sdist="$dir/$name-$version.tar.gz"
    if [ ! -f "$sdist" ]; then
        # pip talks on stdout; this script's stdout is the path only.
        python3 -m pip download --no-deps --disable-pip-version-check "$name==$version" -d "$dir" >&2
    fi
    if [ ! -f "$sdist" ]; then
        echo "seed.sh: pip did not fetch $sdist (found: $(ls "$dir"))" >&2
        exit 1
    fi
    tar xzf "$sdist" -C "$dir"
    if [ ! -f "$unpacked/tcp_chat/__main__.py" ]; then
        echo "seed.sh: $sdist did not unpack to $unpacked/tcp_chat" >&2
        exit 1
    fi
fi
echo "$unpacked"
