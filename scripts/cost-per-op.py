#!/usr/bin/env python3
"""Instructions per delivered message and per login, counted by callgrind: does the cost
of one operation grow with the size of the room or the number of sessions?

    scripts/cost-per-op.py [--bin .build/release/tcp_chat] [--rooms 10,100,1000,5000]
                           [--sessions 10,1000,15000] [--json FILE]

For each room size N: a fresh node under callgrind, N line sessions in one room; the
counters are zeroed (callgrind_control -z), one member sends M messages (N*M about
200,000 deliveries), every member reads all of them, and the counters are dumped. The
instructions of that window, divided by the deliveries (and by the messages sent), are
the cost per delivered (and per relayed) message, everything included: reading,
framing, validation, encoding, fan-out, writing, the loop itself.

For each session count S: a fresh node, S idle sessions in 500 rooms; zero; 300 more
logins one after another (connect, handshake, 200); dump. Instructions / 300 = the cost
of one login (accept, handshake, name and room lookups, the reply).

Flat figures mean no per-message or per-login work scans all sessions or rooms. Not run
by CI (callgrind makes the node ~50x slower; the whole run takes a few minutes). Needs
valgrind and `ulimit -n` above the largest session count (it raises its own soft limit).
"""
import argparse, glob, json, os, resource, selectors, socket, subprocess, sys, tempfile, time

def start_node(binary, work, tag):
    out = open(os.path.join(work, f"{tag}.out"), "w+")
    err = open(os.path.join(work, f"{tag}.err"), "w")
    cg = os.path.join(work, f"callgrind.{tag}")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}.%p",
                          "--dump-instr=no", "--dump-line=no",
                          binary, "server", "-a", "127.0.0.1", "-p", "0", "--rate-limit", "0",
                          "--max-queue-bytes", str(256 << 20), "--max-total-queue-bytes", str(1 << 34),
                          "--handshake-timeout", "600"],
                         stdout=out, stderr=err, cwd=work)
    deadline = time.time() + 120
    while time.time() < deadline:
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("listening on "):
                host, port = line[len("listening on "):].rsplit(":", 1)
                return p, (host, int(port)), cg
        if p.poll() is not None:
            sys.exit(f"node exited: {open(err.name).read()[-2000:]}")
        time.sleep(0.2)
    sys.exit("node did not start")

def control(flag, pid):
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)

def instructions_since_zero(pid, cg):
    before = set(glob.glob(f"{cg}.{pid}*"))
    control("-d", pid)
    new = sorted(set(glob.glob(f"{cg}.{pid}*")) - before, key=os.path.getmtime)
    if not new:
        sys.exit("callgrind wrote no dump")
    for line in open(new[-1]):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    sys.exit("no totals in the callgrind dump")

def stop(p):
    p.terminate()
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()

def login_many(addr, names, room_of, batch=200):
    """Logs `names` in (line sessions), `batch` handshakes in flight; returns the sockets."""
    socks = []
    for i in range(0, len(names), batch):
        part = []
        for name in names[i:i + batch]:
            s = socket.create_connection(addr, timeout=600)
            s.sendall(f"{name}_{room_of(name)}\n".encode())
            part.append(s)
        for s in part:
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(16)
                if not chunk:
                    sys.exit("connection closed during login")
                reply += chunk
            if reply.strip() != b"200":
                sys.exit(f"login refused: {reply!r}")
        socks.extend(part)
    return socks

def per_message(binary, work, n, total, messages=None):
    m = messages or max(1, total // n)
    p, addr, cg = start_node(binary, work, f"room{n}")
    try:
        socks = login_many(addr, [f"m{k}" for k in range(n)], lambda _: "room")
        for s in socks:
            s.setblocking(False)
        sender = socks[0]
        control("-z", p.pid)
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        # The sender's messages, written as the node takes them.
        outgoing = b"".join(b"x%07d\n" % i for i in range(m))
        sent = 0
        got = {s.fileno(): 0 for s in socks}
        partial = {s.fileno(): b"" for s in socks}
        want = m
        deadline = time.time() + 1800
        while min(got.values()) < want:
            if time.time() > deadline:
                sys.exit(f"room {n}: timed out with {sum(got.values())} of {n * m} deliveries")
            if sent < len(outgoing):
                try:
                    sent += sender.send(outgoing[sent:sent + 65536])
                except BlockingIOError:
                    pass
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    sys.exit(f"room {n}: a member was disconnected")
                buf = partial[s.fileno()] + data
                lines = buf.split(b"\n")
                partial[s.fileno()] = lines.pop()
                got[s.fileno()] += sum(1 for l in lines if b" - x" in l)
        deliveries = sum(got.values())
        ir = instructions_since_zero(p.pid, cg)
        for s in socks:
            s.close()
        return {"room": n, "messages": m, "deliveries": deliveries, "instructions": ir,
                "per_delivery": ir / deliveries, "per_message": ir / m}
    finally:
        stop(p)

def per_login(binary, work, sessions, logins):
    p, addr, cg = start_node(binary, work, f"sessions{sessions}")
    try:
        idle = login_many(addr, [f"i{k}" for k in range(sessions)], lambda name: f"r{int(name[1:]) % 500}")
        control("-z", p.pid)
        fresh = []
        for k in range(logins):
            fresh += login_many(addr, [f"n{k}"], lambda _, k=k: f"r{k % 500}", batch=1)
        ir = instructions_since_zero(p.pid, cg)
        for s in idle + fresh:
            s.close()
        return {"sessions": sessions, "logins": logins, "instructions": ir, "per_login": ir / logins}
    finally:
        stop(p)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release/tcp_chat")
    ap.add_argument("--rooms", default="10,100,1000,5000")
    ap.add_argument("--sessions", default="10,1000,15000")
    ap.add_argument("--deliveries", type=int, default=200_000)
    ap.add_argument("--messages", type=int, help="messages per room size (instead of --deliveries / N): "
                    "the same number of messages per member at every size")
    ap.add_argument("--logins", type=int, default=300)
    ap.add_argument("--json")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"no binary at {a.bin} (swift build -c release)")
    rooms = [int(x) for x in a.rooms.split(",") if x]
    sessions = [int(x) for x in a.sessions.split(",") if x]
    need = max(sessions + [0]) + max(rooms + [0]) + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    work = tempfile.mkdtemp(prefix="tcp_chat-cost.")
    # Valgrind 3.19 cannot read Swift 6's DWARF 5: run a copy without debug sections.
    stripped = os.path.join(work, "tcp_chat")
    subprocess.run(["objcopy", "--strip-debug", a.bin, stripped], check=True)
    shown, a.bin = a.bin, stripped
    rows = []
    print(f"callgrind, {shown}; work dir {work}")
    print(f"{'room':>6} {'messages':>9} {'deliveries':>11} {'instr/delivery':>15} {'instr/message':>14}")
    for n in rooms:
        r = per_message(a.bin, work, n, a.deliveries, a.messages)
        rows.append(r)
        print(f"{n:>6} {r['messages']:>9} {r['deliveries']:>11} {r['per_delivery']:>15.0f} {r['per_message']:>14.0f}", flush=True)
    print(f"{'sessions':>8} {'logins':>7} {'instr/login':>12}")
    for s in sessions:
        r = per_login(a.bin, work, s, a.logins)
        rows.append(r)
        print(f"{s:>8} {a.logins:>7} {r['per_login']:>12.0f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

if __name__ == "__main__":
    main()
