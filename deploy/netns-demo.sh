#!/usr/bin/env bash
# A tcp_chat cluster on three "hosts" — Linux network namespaces joined by a bridge — on one
# Linux box. Run as root:
#
#   sudo deploy/netns-demo.sh [--keep] [--tls] [BINARY]
#
# BINARY (or $TCP_CHAT_BIN) defaults to .build/release/tcp_chat, then .build/debug/tcp_chat.
#
# What it does, every wait bounded:
#   1. makes namespaces <prefix>-n1..n3 (one node each, 198.18.0.11..13) and <prefix>-sw
#      (holding the bridge), linked by veth pairs: nothing is added to the host's own network;
#   2. starts one node per namespace, joined as a chain (n2 --peer n1, n3 --peer n2) with a
#      shared secret; gossip links every pair;
#   3. alice (n1), bob (n2) and carol (n3) join room "demo" and each sends one line: every
#      line must reach all three;
#   4. stops node n2 (SIGTERM): alice and carol must still talk (n3 joined through n2, yet
#      the cluster does not split), then starts n2 again and checks it rejoins;
#   5. prints how to attach a terminal client; with --keep waits for Ctrl+C.
# With --tls, step 2 first makes a cluster CA and one certificate per node with the openssl
# commands of docs/tls.md, the nodes link with mutual TLS (checked in their logs), and step 3
# adds `openssl s_client` on n1 chatting with a plaintext client on n3.
# On exit — success, failure, Ctrl+C or kill — a trap stops every process in the demo's
# namespaces and deletes the namespaces (which removes the veth pairs and the bridge).
#
# 198.18.0.0/15 is reserved for network benchmarks (RFC 2544); here the addresses exist only
# inside the demo's namespaces, which have no route anywhere else. Override with
# DEMO_NET=A.B.C (a /24 prefix) if that clashes with something of yours.
# Needs: bash, iproute2 (ip), python3. Exit status 0 when every check passed.
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

KEEP=0
TLS=0
BIN_ARG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1 ;;
        --tls) TLS=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "netns-demo: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$BIN_ARG" ] || { echo "netns-demo: one binary only" >&2; exit 2; }; BIN_ARG="$1" ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN_ARG:-${TCP_CHAT_BIN:-}}"
if [ -z "$BIN" ]; then
    for candidate in "$ROOT/.build/release/tcp_chat" "$ROOT/.build/debug/tcp_chat"; do
        if [ -x "$candidate" ]; then BIN="$candidate"; break; fi
    done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ] || [ -d "$BIN" ]; then
    echo "netns-demo: no tcp_chat binary at ${BIN:-$ROOT/.build/release/tcp_chat or $ROOT/.build/debug/tcp_chat}" >&2
    echo "  Build one (swift build -c release) or pass its path: $0 PATH/tcp_chat" >&2
    exit 2
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

[ "$(id -u)" -eq 0 ] || { echo "netns-demo: run as root (it creates network namespaces)" >&2; exit 2; }
TOOLS=(ip python3)
[ "$TLS" -eq 0 ] || TOOLS+=(openssl)
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || { echo "netns-demo: needs $tool" >&2; exit 2; }
done

NET="${DEMO_NET:-198.18.0}"
PORT=8888
PREFIX="tcpchat-demo-$$"
SW="$PREFIX-sw"
NODES=(n1 n2 n3)
declare -A IP=([n1]="$NET.11" [n2]="$NET.12" [n3]="$NET.13")
declare -A PID=()
CREATED=()           # namespaces, recorded before they are made
WORK=""
CLEANED=0

say()  { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local rc=$?
    [ "$CLEANED" -eq 0 ] || return 0
    CLEANED=1
    trap - EXIT INT TERM HUP
    set +e
    # Every process in our namespaces: the nodes and any client still running.
    local ns pids all deadline
    for ns in "${CREATED[@]}"; do
        pids="$(ip netns pids "$ns" 2>/dev/null)"
        # shellcheck disable=SC2086  # one word per pid
        [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
    done
    deadline=$((SECONDS + 5))
    while [ $SECONDS -lt $deadline ]; do
        all=""
        for ns in "${CREATED[@]}"; do all+="$(ip netns pids "$ns" 2>/dev/null)"; done
        [ -n "$all" ] || break
        sleep 0.1
    done
    for ns in "${CREATED[@]}"; do
        pids="$(ip netns pids "$ns" 2>/dev/null)"
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    done
    wait 2>/dev/null
    for ns in "${CREATED[@]}"; do ip netns del "$ns" 2>/dev/null; done
    [ -z "$WORK" ] || rm -rf "$WORK"
    if [ ${#CREATED[@]} -gt 0 ]; then echo "(cleaned up: namespaces ${CREATED[*]} and their processes)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

WORK="$(mktemp -d /tmp/tcpchat-demo.XXXXXX)"

# ---- helpers in python3 (plain sockets, each run inside one namespace) ----------------------
cat > "$WORK/chat.py" <<'PY'
"""Scripted clients for the demo. Every wait has a deadline.

participant HOST PORT USER ROOM TEXT BARRIER_DIR N_PARTIES EXPECT_USERS
    log in (a line session), mark itself joined, wait until N_PARTIES have joined, send
    TEXT, then read until a line from every user in EXPECT_USERS (comma-separated) came in.
hold HOST PORT USER ROOM STOPFILE
    log in and stay until STOPFILE exists (at most 60 s).
try HOST PORT USER ROOM
    one login attempt: prints the reply (200/403/...), then leaves.
"""
import os, socket, sys, time

def connect(host, port, user, room, timeout=5.0):
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(f"{user}_{room}\n".encode())
    reply = b""
    deadline = time.monotonic() + timeout
    while not reply.endswith(b"\n") and time.monotonic() < deadline:
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
    return s, reply.decode(errors="replace").strip()

def participant(host, port, user, room, text, barrier, parties, expect):
    tag = f"[{os.environ.get('DEMO_NS', '?')} {user}]"
    s, reply = connect(host, port, user, room)
    print(f"{tag} login -> {reply}", flush=True)
    if reply != "200":
        return 1
    open(os.path.join(barrier, user), "w").close()
    deadline = time.monotonic() + 15
    while len(os.listdir(barrier)) < int(parties):
        if time.monotonic() > deadline:
            print(f"{tag} the others never joined", flush=True)
            return 1
        time.sleep(0.05)
    time.sleep(0.5)                     # let the room's membership reach every node
    s.sendall(f"{text}\n".encode())
    print(f"{tag} sent: {text}", flush=True)
    want = set(expect.split(","))
    seen, buf = set(), b""
    deadline = time.monotonic() + 10
    s.settimeout(0.5)
    while seen != want and time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.decode(errors="replace")
            print(f"{tag} got:  {line}", flush=True)
            sender = line.split(" - ", 1)[0]
            if sender in want:
                seen.add(sender)
    try:
        s.sendall(b"/exit\n")
    except OSError:
        pass
    s.close()
    missing = want - seen
    if missing:
        print(f"{tag} MISSING lines from: {', '.join(sorted(missing))}", flush=True)
        return 1
    return 0

def hold(host, port, user, room, stopfile):
    s, reply = connect(host, port, user, room)
    print(reply, flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    s.close()
    return 0

def attempt(host, port, user, room):
    try:
        s, reply = connect(host, port, user, room, timeout=2)
        s.close()
    except OSError as e:
        reply = f"error {e}"
    print(reply, flush=True)
    return 0

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"participant": participant, "hold": hold, "try": attempt}[cmd](*args))
PY

nsx() { local ns="$PREFIX-$1"; shift; DEMO_NS="$ns" ip netns exec "$ns" "$@"; }

# ---- 1. the network ------------------------------------------------------------------------
say "network: namespaces $PREFIX-{sw,n1,n2,n3}, bridge in $SW, nodes at $NET.11-13"
CREATED+=("$SW")
ip netns add "$SW"
ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for n in "${NODES[@]}"; do
    ns="$PREFIX-$n"
    CREATED+=("$ns")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created straight inside the namespaces: the host's own network never
    # sees them.
    ip link add eth0 netns "$ns" type veth peer name "port-$n" netns "$SW"
    ip -n "$SW" link set "port-$n" master br0
    ip -n "$SW" link set "port-$n" up
    ip -n "$ns" addr add "${IP[$n]}/24" dev eth0
    ip -n "$ns" link set eth0 up
done

# ---- 2. the nodes --------------------------------------------------------------------------
head -c 32 /dev/urandom | base64 > "$WORK/cluster.secret"
chmod 0600 "$WORK/cluster.secret"
declare -A PEERS=([n1]="" [n2]="--peer ${IP[n1]}:$PORT" [n3]="--peer ${IP[n2]}:$PORT")
declare -A TLSFLAGS=([n1]="" [n2]="" [n3]="")
if [ "$TLS" -eq 1 ]; then
    say "TLS: a cluster CA and one certificate per node (docs/tls.md)"
    mkdir -p "$WORK/tls"
    (
        cd "$WORK/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 3650 -subj "/CN=tcp_chat cluster CA" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        for n in "${NODES[@]}"; do
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$n.key"
            openssl req -new -key "$n.key" -out "$n.csr" -subj "/CN=$n"
            printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
                "$n" "${IP[$n]}" > "$n.ext"
            openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 \
                -extfile "$n.ext" -out "$n.pem" 2>/dev/null
            chmod 600 "$n.key"
        done
    )
    for n in "${NODES[@]}"; do
        TLSFLAGS[$n]="--tls-cert $WORK/tls/$n.pem --tls-key $WORK/tls/$n.key --tls-ca $WORK/tls/ca.pem"
    done
fi

start_node() {
    local n="$1"
    # A simple command (not a function) in the background, so that $! is the node itself:
    # ip netns exec enters the namespace and execs the binary in the same process.
    # shellcheck disable=SC2086  # PEERS holds 0 or 2 words, TLSFLAGS 0 or 6 (no spaces in paths)
    ip netns exec "$PREFIX-$n" "$BIN" server -a "${IP[$n]}" -p "$PORT" ${PEERS[$n]} ${TLSFLAGS[$n]} \
        --cluster-secret-file "$WORK/cluster.secret" --log-level info \
        >"$WORK/$n.out" 2>>"$WORK/$n.log" &
    PID[$n]=$!
}

wait_listening() {
    local n="$1" deadline=$((SECONDS + 15))
    until grep -q '^listening on ' "$WORK/$n.out" 2>/dev/null; do
        if ! kill -0 "${PID[$n]}" 2>/dev/null; then
            cat "$WORK/$n.log" >&2
            fail "node $n exited before listening"
        fi
        [ $SECONDS -lt $deadline ] || fail "node $n did not print 'listening on' within 15 s"
        sleep 0.1
    done
    echo "$n ($PREFIX-$n): $(head -n1 "$WORK/$n.out")"
}

say "nodes: n1; n2 --peer n1; n3 --peer n2 (a chain: gossip links the rest)"
say "binary: $BIN"
for n in "${NODES[@]}"; do start_node "$n"; done
for n in "${NODES[@]}"; do wait_listening "$n"; done

# A name held on one node gets 403 on another only once their link is up: that is how this
# script knows the cluster has formed, with nothing but the chat protocol.
wait_linked() {    # wait_linked HOLD_NODE OTHER_NODE... (bounded: 20 s)
    local holder="$1"; shift
    local stop="$WORK/stop-probe-$holder" user="probe$RANDOM" reply n deadline
    rm -f "$stop"
    ip netns exec "$PREFIX-$holder" python3 "$WORK/chat.py" hold "${IP[$holder]}" "$PORT" "$user" probe "$stop" >"$WORK/hold.out" 2>&1 &
    local hold_pid=$!
    deadline=$((SECONDS + 20))
    until [ "$(head -n1 "$WORK/hold.out" 2>/dev/null)" = 200 ]; do
        [ $SECONDS -lt $deadline ] || { touch "$stop"; fail "probe login on $holder failed: $(cat "$WORK/hold.out")"; }
        sleep 0.1
    done
    for n in "$@"; do
        while :; do
            reply="$(nsx "$n" python3 "$WORK/chat.py" try "${IP[$n]}" "$PORT" "$user" probe)"
            [ "$reply" != 403 ] || break
            [ $SECONDS -lt $deadline ] || { touch "$stop"; fail "$n does not see $holder's users after 20 s (last reply: $reply)"; }
            sleep 0.3
        done
        echo "$n sees a name held on $holder (403): linked"
    done
    touch "$stop"
    wait "$hold_pid" 2>/dev/null || true
}

say "waiting for the cluster to form"
wait_linked n1 n2 n3

# ---- 3. a conversation across the three hosts ----------------------------------------------
chat_round() {     # chat_round ROUND "node:user:text"...
    local round="$1"; shift
    local barrier="$WORK/barrier-$round" users="" spec pids=() rc=0
    mkdir -p "$barrier"
    for spec in "$@"; do users+="${users:+,}$(cut -d: -f2 <<<"$spec")"; done
    for spec in "$@"; do
        IFS=: read -r n user text <<<"$spec"
        DEMO_NS="$PREFIX-$n" ip netns exec "$PREFIX-$n" timeout 40 python3 "$WORK/chat.py" participant "${IP[$n]}" "$PORT" "$user" demo \
            "$text" "$barrier" "$#" "$users" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}

say "alice@n1, bob@n2 and carol@n3 in room 'demo': each line must reach all three"
chat_round 1 "n1:alice:hello from n1" "n2:bob:hello from n2" "n3:carol:hello from n3" \
    || fail "a message did not cross the cluster"

if [ "$TLS" -eq 1 ]; then
    say "TLS: every peer link is mutual TLS (from the nodes' logs)"
    for n in "${NODES[@]}"; do
        ups="$(grep -c 'peer link up' "$WORK/$n.log" || true)"
        tls_ups="$(grep 'peer link up' "$WORK/$n.log" | grep -c 'tls=TLSv1.3' || true)"
        [ "$ups" -gt 0 ] && [ "$ups" = "$tls_ups" ] || fail "$n: $tls_ups of $ups peer links are TLS 1.3"
        echo "$n: $ups peer link(s) up, all over TLS 1.3"
    done
    say "TLS: openssl s_client on n1 chats with a plaintext client on n3"
    mkfifo "$WORK/sclient.in"
    DEMO_NS="$PREFIX-n1" ip netns exec "$PREFIX-n1" timeout 30 openssl s_client -quiet -verify_return_error \
        -connect "${IP[n1]}:$PORT" -CAfile "$WORK/tls/ca.pem" -verify_ip "${IP[n1]}" \
        <"$WORK/sclient.in" >"$WORK/sclient.out" 2>"$WORK/sclient.err" &
    SCLIENT=$!
    exec 7>"$WORK/sclient.in"
    echo "sam_demo" >&7
    deadline=$((SECONDS + 10))
    until grep -qx 200 "$WORK/sclient.out" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "s_client got no 200: $(cat "$WORK/sclient.out" "$WORK/sclient.err")"
        sleep 0.1
    done
    echo "s_client (n1, TLS): 200"
    nsx n3 timeout 30 python3 - "${IP[n3]}" "$PORT" >"$WORK/nick.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
s.sendall(b"nick_demo\n")
f = s.makefile("rb")
assert f.readline().strip() == b"200", "nick: no 200"
print("nick (n3, plaintext): 200", flush=True)
while True:
    line = f.readline().decode().strip()
    if line == "sam - hello over TLS":
        print("nick got: " + line, flush=True)
        s.sendall(b"hello in the clear\n")
        break
time.sleep(0.5)
PY
    NICK=$!
    # The room's membership reaches n1 a moment after nick's 200: say it until nick hears it.
    deadline=$((SECONDS + 10))
    until grep -q "nick got" "$WORK/nick.out" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "the plaintext client on n3 did not see the TLS client's line"
        grep -q "200" "$WORK/nick.out" 2>/dev/null && echo "hello over TLS" >&7
        sleep 0.5
    done
    cat "$WORK/nick.out"
    deadline=$((SECONDS + 10))
    until grep -qx "nick - hello in the clear" "$WORK/sclient.out" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "s_client did not get nick's line: $(cat "$WORK/sclient.out")"
        sleep 0.1
    done
    echo "s_client got: nick - hello in the clear"
    wait "$NICK" || fail "the plaintext client on n3 did not see the TLS client's line"
    exec 7>&-
    wait "$SCLIENT" 2>/dev/null || true
fi

# ---- 4. a node goes down, the cluster stays one --------------------------------------------
say "stopping node n2 (SIGTERM): n3 joined through it, but gossip linked n1 and n3"
kill -TERM "${PID[n2]}"
deadline=$((SECONDS + 10))
while kill -0 "${PID[n2]}" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "node n2 did not stop within 10 s of SIGTERM"
    sleep 0.1
done
if wait "${PID[n2]}"; then echo "n2 exited 0"; else fail "n2 exited $? on SIGTERM"; fi
wait_linked n1 n3
chat_round 2 "n1:alice:n2 is gone, still here" "n3:carol:me too" \
    || fail "n1 and n3 lost each other when n2 went down"

say "starting n2 again: it rejoins by itself"
: >"$WORK/n2.out"
start_node n2
wait_listening n2
wait_linked n2 n1 n3
chat_round 3 "n1:alice:welcome back" "n2:bob:back" "n3:carol:hi bob" \
    || fail "n2 did not rejoin"

if "$BIN" status --help >/dev/null 2>&1; then
    say "the cluster as n1 sees it (tcp_chat status)"
    nsx n1 timeout 10 "$BIN" status -a "${IP[n1]}" -p "$PORT" --cluster-secret-file "$WORK/cluster.secret" || true
fi

say "all checks passed"

# ---- 5. interactive use ----------------------------------------------------------------------
cat <<EOF

Attach to the cluster while it runs (another shell, as root): a terminal client on any node,

  ip netns exec $PREFIX-n1 $BIN client -a ${IP[n1]} -p $PORT -u alice -c demo${TLS:+$( [ "$TLS" -eq 1 ] && echo " --tls-ca $WORK/tls/ca.pem")}
  ip netns exec $PREFIX-n3 $BIN client -a ${IP[n3]} -p $PORT -u carol -c demo

or a line tool (type a handshake such as dave_demo, then chat):

  ip netns exec $PREFIX-n2 nc ${IP[n2]} $PORT

See the cluster from one node, and take a node down (the others drop it within 3 s):

  ip netns exec $PREFIX-n1 $BIN status -a ${IP[n1]} -p $PORT --cluster-secret-file $WORK/cluster.secret
  kill -TERM ${PID[n2]}        # node n2 (n1=${PID[n1]}, n3=${PID[n3]})

Node logs: $WORK/n1.log, n2.log, n3.log
EOF

if [ "$KEEP" -eq 1 ]; then
    echo
    echo "--keep: the cluster stays up. Ctrl+C to stop it and clean up."
    while :; do sleep 1 & wait $! || true; done
else
    echo "(run with --keep to leave the cluster up; cleaning up now)"
fi
