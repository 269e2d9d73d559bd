#!/usr/bin/env bash
# Multi-host partition and heal, on Linux network namespaces (SPEC.md §4.2.4–5).
#
# Three "hosts" (namespaces tcn-a/b/c-<suffix>) on one bridge (namespace tcn-br-<suffix>),
# one tcp_chat node each on 10.250.<x>.1/2/3:8888 (b and c --peer a). The script checks that
# a message crosses all three, cuts c off (its veth on the bridge goes down), checks that
# both sides keep serving, logs `alice` in on a and then — once both sides noticed the split —
# on c too, heals, and checks that only the earlier alice (on a) survives, the other one
# getting the `* ` notice and a close, and that messages cross to c again.
#
# Usage: partition-heal.sh /path/to/tcp_chat   (or TCP_CHAT_BIN=... partition-heal.sh)
# Needs root, iproute2 (`ip`) and python3. Touches nothing outside its own namespaces:
# every address lives inside them. Exit 0 and `netns partition-heal: ok` on success.
set -euo pipefail

say() { printf 'netns partition-heal: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

BIN=${1:-${TCP_CHAT_BIN:-}}
[[ -n $BIN ]] || die "usage: $0 /path/to/tcp_chat (or set TCP_CHAT_BIN)"
[[ -x $BIN ]] || die "$BIN is not an executable file"
BIN=$(readlink -f -- "$BIN")
[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
command -v ip >/dev/null || die "iproute2 (ip) is missing"
PY=$(command -v python3) || die "python3 is missing"

SUFFIX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
NET=10.250.$(( $(od -An -N1 -tu1 /dev/urandom | tr -d ' ') % 250 + 1 ))
NS_A=tcn-a-$SUFFIX NS_B=tcn-b-$SUFFIX NS_C=tcn-c-$SUFFIX NS_BR=tcn-br-$SUFFIX
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcn-$SUFFIX.XXXXXX")
CREATED_NS=()
PIDS=()
PORT=8888
HB=(--heartbeat-ms 200 --peer-timeout-ms 1000)

cleanup() {
    local rc=$?
    set +eu
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    # Anything else still running inside our own namespaces was started by this script.
    for ns in "${CREATED_NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if (( rc != 0 )); then
        for f in "$WORK"/*.err "$WORK"/*.lines; do
            [[ -f $f ]] || continue
            say "--- $(basename "$f") (last 25 lines) ---"
            tail -n 25 "$f" >&2
        done
    fi
    # Deleting a namespace deletes the veth ends and the bridge inside it.
    for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { date +%s%3N; }
# True once process $1 has ended (gone, or a zombie not yet reaped by `wait`).
exited() { [[ ! -e /proc/$1/stat ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }

# wait_for SECONDS "what" command...: polls every 50 ms until the command succeeds.
wait_for() {
    local limit=$1 what=$2; shift 2
    local end=$(( $(now_ms) + limit * 1000 ))
    until "$@"; do
        (( $(now_ms) < end )) || die "not true after ${limit}s: $what"
        sleep 0.05
    done
}

# ---------------------------------------------------------------- the network
say "namespaces *-$SUFFIX, addresses $NET.1-3"
for ns in "$NS_BR" "$NS_A" "$NS_B" "$NS_C"; do
    ip netns add "$ns"
    CREATED_NS+=("$ns")
    ip -n "$ns" link set lo up
done
ip -n "$NS_BR" link add br0 type bridge
ip -n "$NS_BR" link set br0 up
i=0
for host in a b c; do
    i=$((i + 1))
    ns_var=NS_${host^^}
    ns=${!ns_var}
    ip link add eth0 netns "$ns" type veth peer name "v$host" netns "$NS_BR"
    ip -n "$NS_BR" link set "v$host" master br0
    ip -n "$NS_BR" link set "v$host" up
    ip -n "$ns" addr add "$NET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
done

# ---------------------------------------------------------------- helpers
HELPER=$WORK/client.py
cat >"$HELPER" <<'PY'
"""Chat clients for the partition test.
once HOST PORT USER ROOM: log in, print the reply line (or <EOF>), close.
agent HOST PORT USER ROOM OUT FIFO: log in and stay: every byte received is appended to OUT,
  `<EOF>` when the node closes; each line written to FIFO is sent. Gives up after 300 s."""
import os, selectors, socket, sys, time

def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

mode, host, port, user, room = sys.argv[1:6]
if mode == "once":
    s = connect(host, port)
    s.sendall(f"{user}_{room}\n".encode())
    buf = b""
    try:
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    line = buf.split(b"\n")[0].decode(errors="replace")
    print(line if b"\n" in buf else "<EOF>" + line)
    s.close()
    sys.exit(0)

out_path, fifo_path = sys.argv[6:8]
out = open(out_path, "ab", buffering=0)
fifo = os.open(fifo_path, os.O_RDWR | os.O_NONBLOCK)
s = connect(host, port)
s.settimeout(None)
s.sendall(f"{user}_{room}\n".encode())
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ, "sock")
sel.register(fifo, selectors.EVENT_READ, "fifo")
pending = b""
end = time.monotonic() + 300
while time.monotonic() < end:
    for key, _ in sel.select(timeout=1):
        if key.data == "sock":
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                out.write(b"<EOF>\n")
                sys.exit(0)
            out.write(d)
        else:
            pending += os.read(fifo, 65536)
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                s.sendall(line + b"\n")
PY

ns_of() { local v=NS_${1^^}; echo "${!v}"; }
addr_of() { case $1 in a) echo "$NET.1" ;; b) echo "$NET.2" ;; c) echo "$NET.3" ;; esac; }

start_node() { # host [flags...]
    local host=$1; shift
    ip netns exec "$(ns_of "$host")" "$BIN" server -a 0.0.0.0 -p "$PORT" \
        --advertise "$(addr_of "$host"):$PORT" "${HB[@]}" --log-level notice "$@" \
        >"$WORK/node-$host.out" 2>"$WORK/node-$host.err" &
    PIDS+=($!)
    eval "NODE_PID_$host=$!"
}

node_listening() { grep -q '^listening on ' "$WORK/node-$1.out"; }
node_id() { grep 'node started' "$WORK/node-$1.err" | grep -o 'node=[0-9a-f]*' | head -n1 | cut -d= -f2; }
# The peers a node has a link with now, from its `peer link up` / `peer link down` lines.
links_of() {
    awk '/peer link (up|down)/ {
            if (match($0, / peer=[0-9a-f]+/)) {
                id = substr($0, RSTART + 6, RLENGTH - 6)
                if ($0 ~ /peer link up/) up[id] = 1; else delete up[id]
            }
         }
         END { for (k in up) print k }' "$WORK/node-$1.err" | sort
}
linked_to() { # host, ids...: exactly these links
    local want have
    want=$(printf '%s\n' "${@:2}" | sort)
    have=$(links_of "$1")
    [[ $have == "$want" ]]
}

try_login() { # host-of-client node-host user room → prints the reply
    ip netns exec "$(ns_of "$1")" "$PY" "$HELPER" once "$(addr_of "$2")" "$PORT" "$3" "$4" 2>>"$WORK/helper.err" || echo "<error>"
}
login_is() { [[ $(try_login "$1" "$2" "$3" "$4") == "$5" ]]; }

# agent name host user room: a client living in host's namespace, on host's node.
start_agent() {
    local name=$1 host=$2 user=$3 room=$4
    mkfifo "$WORK/$name.fifo"
    : >"$WORK/$name.lines"
    ip netns exec "$(ns_of "$host")" "$PY" "$HELPER" agent "$(addr_of "$host")" "$PORT" "$user" "$room" \
        "$WORK/$name.lines" "$WORK/$name.fifo" 2>>"$WORK/helper.err" &
    PIDS+=($!)
}
say_as() { # agent text
    timeout 5 bash -c 'printf "%s\n" "$2" >"$1"' _ "$WORK/$1.fifo" "$2" || die "cannot hand \"$2\" to client $1"
}
has_line() { grep -qxF -- "$2" "$WORK/$1.lines"; }
count_line() { grep -cxF -- "$2" "$WORK/$1.lines" || true; }
expect_line() { # seconds agent line
    wait_for "$1" "client $2 to receive \"$3\"" has_line "$2" "$3"
}
agent_joined() { expect_line 5 "$1" 200; }

# ---------------------------------------------------------------- the cluster
start_node a
wait_for 10 "node a to print 'listening on'" node_listening a
start_node b --peer "$NET.1:$PORT"
start_node c --peer "$NET.1:$PORT"
wait_for 10 "node b to print 'listening on'" node_listening b
wait_for 10 "node c to print 'listening on'" node_listening c
wait_for 5 "every node to log its id" eval '[[ -n $(node_id a) && -n $(node_id b) && -n $(node_id c) ]]'
ID_A=$(node_id a) ID_B=$(node_id b) ID_C=$(node_id c)
wait_for 15 "a full mesh (each node linked to the two others)" \
    eval 'linked_to a "$ID_B" "$ID_C" && linked_to b "$ID_A" "$ID_C" && linked_to c "$ID_A" "$ID_B"'
say "mesh up: a=$ID_A b=$ID_B c=$ID_C"

start_agent ann a ann net;  agent_joined ann
start_agent ben b ben net;  agent_joined ben
start_agent cat c cat net;  agent_joined cat
start_agent cody c cody net; agent_joined cody
[[ $(try_login b a ann net) == 403 ]] || die "ann (on a) was not refused on b"
[[ $(try_login a c ben net) == 403 ]] || die "ben (on b) was not refused on c"

say_as ann "hello from a"
for who in ann ben cat cody; do expect_line 5 "$who" "ann - hello from a"; done
say_as cat "hello from c"
for who in ann ben cat cody; do expect_line 5 "$who" "cat - hello from c"; done
say "a message crosses all three hosts"

# ---------------------------------------------------------------- the split
ip -n "$NS_BR" link set vc down
split_at=$(now_ms)
wait_for 5 "a and b to drop their links to c, and c its links to a and b" \
    eval 'linked_to a "$ID_B" && linked_to b "$ID_A" && linked_to c'
say "split noticed after $(( $(now_ms) - split_at )) ms"
# Each side keeps serving.
say_as ann "a and b, split"
expect_line 5 ben "ann - a and b, split"
expect_line 5 ann "ann - a and b, split"
say_as cody "c alone"
expect_line 5 cat "cody - c alone"
expect_line 5 cody "cody - c alone"
# c's users are gone from the a–b side (names freed after the peer timeout), and back.
wait_for 5 "cat (on cut-off c) to be free on b" login_is b b cat net 200

# alice logs in on a first, then on c: each side grants her.
start_agent alice_a a alice net
agent_joined alice_a
start_agent alice_c c alice net
agent_joined alice_c
say "alice granted on both sides of the split"

# ---------------------------------------------------------------- the heal
ip -n "$NS_BR" link set vc up
heal_at=$(now_ms)
wait_for 15 "alice on c (the later login) to get the notice and be closed" has_line alice_c "<EOF>"
say "merge settled alice after $(( $(now_ms) - heal_at )) ms"
has_line alice_c "* your name was granted to an earlier login elsewhere in the cluster; disconnecting" \
    || die "alice on c was closed without the notice"
if has_line alice_a "<EOF>"; then die "alice on a (the earlier login) was disconnected too"; fi
wait_for 15 "the mesh to come back" \
    eval 'linked_to a "$ID_B" "$ID_C" && linked_to b "$ID_A" "$ID_C" && linked_to c "$ID_A" "$ID_B"'
wait_for 5 "c to know a's alice again (alice refused on c)" login_is c c alice net 403
[[ $(try_login b b alice net) == 403 ]] || die "alice is not held on b after the merge"

say_as ann "healed"
for who in ann ben cat cody alice_a; do expect_line 5 "$who" "ann - healed"; done
say_as alice_a "alice is still here"
for who in ann ben cat cody alice_a; do expect_line 5 "$who" "alice - alice is still here"; done
if has_line alice_a "<EOF>"; then die "alice on a was disconnected after the merge"; fi
for who in ann ben cat cody alice_a; do
    for msg in "ann - healed" "alice - alice is still here"; do
        n=$(count_line "$who" "$msg")
        [[ $n == 1 ]] || die "client $who received \"$msg\" $n times"
    done
done
for host in a b c; do
    pid_var=NODE_PID_$host
    if exited "${!pid_var}"; then die "node $host died"; fi
done

# A clean stop still works everywhere.
for host in c b a; do
    pid_var=NODE_PID_$host
    kill -TERM "${!pid_var}"
done
for host in c b a; do
    pid_var=NODE_PID_$host
    pid=${!pid_var}
    wait_for 5 "node $host to exit after SIGTERM" exited "$pid"
    rc=0; wait "$pid" || rc=$?
    (( rc == 0 )) || die "node $host exited with status $rc after SIGTERM"
done

printf 'netns partition-heal: ok\n'
