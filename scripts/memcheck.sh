#!/usr/bin/env bash
# The node under valgrind's memcheck, end to end: a node under valgrind, a plain peer node
# linked to it, clients on both exchanging messages (line and raw sessions, a refused name,
# bad input), then SIGTERM. Fails on any memcheck error, on a definitely or indirectly
# lost block at exit, or on a non-zero exit of the node.
#
#   scripts/memcheck.sh [BINARY]          # default: the debug build (swift build first)
#
# Not part of CI (valgrind makes the node ~30x slower). Loopback only; everything it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/debug/tcp_chat}
[ -x "$bin" ] || { echo "memcheck: no binary at $bin (swift build)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d /tmp/tcp_chat-memcheck.XXXXXX)
# Valgrind 3.19 (Debian 12) cannot read the DWARF 5 that Swift 6 emits and gives up; a
# copy without debug sections keeps the symbol table, so reports still name functions.
objcopy --strip-debug "$bin" "$work/tcp_chat"
bin=$work/tcp_chat
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_listening() {  # file → prints the address once the node says it listens
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$1" 2>/dev/null; then sed -n 's/^listening on //p' "$1"; return; fi
        sleep 0.1
    done
    echo "memcheck: node did not start ($1)" >&2; exit 2
}

valgrind --tool=memcheck --leak-check=full --show-leak-kinds=${MEMCHECK_SHOW:-definite,indirect} \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=9 --log-file="$work/valgrind.log" \
    --suppressions=scripts/valgrind.supp \
    "$bin" server -a 127.0.0.1 -p 0 --heartbeat-ms 500 --peer-timeout-ms 20000 \
    >"$work/a.out" 2>"$work/a.err" &
a_pid=$!; pids+=("$a_pid")
a=$(wait_listening "$work/a.out")
"$bin" server -a 127.0.0.1 -p 0 --peer "$a" >"$work/b.out" 2>"$work/b.err" &
pids+=("$!")
b=$(wait_listening "$work/b.out")
echo "memcheck: node under valgrind at $a (pid $a_pid), peer at $b, logs in $work"

python3 - "$a" "$b" <<'EOF'
import socket, sys, time
def addr(s):
    h, p = s.rsplit(":", 1); return (h, int(p))
def login(target, name, line=True):
    s = socket.create_connection(addr(target), timeout=60)
    s.sendall((name + "_room\n" if line else name + "_room").encode())
    f = s.makefile("rb")
    return s, f
a, b = sys.argv[1], sys.argv[2]
# Wait for the link: a login on b of a name held on a must be refused.
deadline = time.time() + 120
s1, f1 = login(a, "ann")
assert f1.readline().strip() == b"200", "ann not accepted"
while True:
    s2, f2 = login(b, "ann")
    r = f2.readline().strip()
    s2.close()
    if r == b"403": break
    assert time.time() < deadline, "the nodes never linked"
    time.sleep(0.5)
s3, f3 = login(b, "bob")
assert f3.readline().strip() == b"200"
time.sleep(1.0)
for i in range(50):
    s1.sendall(b"hello %d from a\n" % i)
    s3.sendall(b"hello %d from b\n" % i)
got = 0
s3.settimeout(60)
while got < 100:
    try:
        line = f3.readline()
    except TimeoutError:
        sys.exit("bob got %d of 100 messages" % got)
    assert line, "bob's connection closed"
    if b"hello" in line: got += 1
raw, rf = login(a, "cat", line=False)
assert raw.recv(100).strip() == b"200"   # a raw session's replies carry no newline
raw.sendall(b"\x1b[31m bad\n")   # refused: a control character
raw.sendall(b"x" * 5000 + b"\n")  # refused: too long
bad = socket.create_connection(addr(a)); bad.sendall(b"no handshake here\n"); bad.close()
time.sleep(2.0)
print("memcheck: traffic done (100 messages across the link, bad input refused)")
EOF

kill -TERM "$a_pid"
rc=0; wait "$a_pid" || rc=$?
echo "memcheck: node exited with $rc"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$work/valgrind.log" || true
if [ "$rc" -ne 0 ]; then
    echo "memcheck: FAIL (exit $rc; 9 = memcheck errors or leaks); see $work/valgrind.log" >&2
    exit 1
fi
echo "memcheck: PASS"
