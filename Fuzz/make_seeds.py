#!/usr/bin/env python3
"""Writes the seed corpora under Fuzz/corpus/<target>/ (checked in; run again after
changing an input layout). Each seed is one small file named after what it exercises;
the layouts are described at the top of each target's Swift file."""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
A = "0123456789abcdef"
B = "fedcba9876543210"


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- handshake_framing: [cfg][n][n x (len-1, flags)][payload] ----------------------------
# cfg: bits 0-2 message limit index (0=4096, 1=1, 2=2, 3=3, 4=8, 5=16, 6=64, 7=300),
# bits 3-5 repeats-1, bit 6 final silence, bit 7 handshake limit 16.
def hf(name, payload, cfg=0, specs=()):
    data = bytes([cfg, len(specs)])
    for length, flags in specs:
        data += bytes([(length - 1) & 0xFF, flags | (((length - 1) >> 8) << 2)])
    write("handshake_framing", name, data + (payload.encode() if isinstance(payload, str) else payload))


SILENCE, PAUSE = 1, 2
hf("line-session", "alice_room\nhello\n")
hf("line-session-crlf", "bob_General\r\nhi there\r\n\r\n/exit\r\n")
hf("raw-handshake-silence", "alice_room", cfg=0x40)
hf("raw-session", "alice_room" + "hello", specs=[(10, SILENCE), (5, SILENCE)])
hf("raw-cr-before-silence", "u_r\r", cfg=0x40)
hf("byte-by-byte", "carol_x\nhey\r\nyo\n", specs=[(1, 0)])
hf("split-crlf", "dave_r\r\nab\r\ncd\n", specs=[(7, 0), (1, 0), (3, 0)])
hf("paused-reads", "eve_r\none\ntwo\nthree", cfg=0x40, specs=[(3, PAUSE), (9, PAUSE), (4, 0)])
hf("bad-space", "alice room\n")
hf("bad-empty-user", "_room\n")
hf("bad-empty-chat", "alice_\n")
hf("bad-two-underscores", "a_b_c\n")
hf("bad-user-33", "u" * 33 + "_r\n")
hf("max-user-32-chat-64", "U" * 32 + "_" + "c/" * 32 + "\n")
hf("bad-chat-65", "u_" + "c" * 65 + "\n")
hf("bad-utf8-name", b"\xc3\xa9l_room\n")
hf("empty-line", "\n")
hf("crlf-only", "\r\n")
hf("handshake-too-long", "a" * 300, cfg=0x40)
hf("handshake-too-long-small-limit", "aaaaaaaaaaaaaaaaaaaaaaaa_b\n", cfg=0x80)
hf("peer-hello", "TCPCHAT-PEER/3 HELLO %s 10.0.0.1:8888 n0nce open\nHB %s 1 10.0.0.1:8888 1 -\n" % (A, A))
hf("peer-hello-raw", "TCPCHAT-PEER/3 HELLO %s h:1 n open" % A, cfg=0x40)
hf("status", "TCPCHAT-STATUS/1\nPUBLIC\n")
hf("limit-8", "u_r\n0123456789\nshort\n12345678\r\n123456789\r\n", cfg=0x04)
hf("limit-1-partial", "u_r\nab", cfg=0x41)
hf("over-limit-then-more", "u_r\n" + "x" * 40 + "\nok\n" + "y" * 30, cfg=0x45, specs=[(6, 0), (7, 0)])
hf("repeat-8-compaction", "u_r\n" + "m" * 600 + "\n", cfg=0x38)
hf("repeat-long-partials", "w" * 200 + "\n", cfg=0x3E, specs=[(150, 0), (300, PAUSE)])
hf("utf8-and-control", b"u_r\nh\xc3\xa9llo\n\xff\xfe\n\x1b[2J\nt\tab\n\xc2\x85\n")
hf("exit-raw", "u_r/exit", specs=[(3, SILENCE), (5, SILENCE)])
hf("http-request-line", "GET /ws HTTP/1.1\r\nHost: localhost:8888\r\nUpgrade: websocket\r\n\r\n\x81\x85", specs=[(9, 0)])

# ---- text_check: [cfg][text]; cfg bits 0-2 limit (4096,1,4,7,16,64,255,100000), bit 7 raw
def tc(name, text, cfg=0):
    write("text_check", name, bytes([cfg]) + (text.encode() if isinstance(text, str) else text))


tc("ascii", "hello world")
tc("tab", "a\tb")
tc("empty", "")
tc("exit", "/exit")
tc("esc", "\x1b[31mred")
tc("nul", b"a\x00b")
tc("del", b"\x7f")
tc("c1-first", b"\xc2\x80")
tc("c1-nel", b"\xc2\x85")
tc("c1-last", b"\xc2\x9f")
tc("nbsp", b"\xc2\xa0")
tc("overlong-2", b"\xc0\xaf")
tc("overlong-3", b"\xe0\x80\xaf")
tc("overlong-4", b"\xf0\x80\x80\xaf")
tc("surrogate", b"\xed\xa0\x80")
tc("max-bmp", b"\xef\xbf\xbf")
tc("max-scalar", b"\xf4\x8f\xbf\xbf")
tc("past-max", b"\xf4\x90\x80\x80")
tc("f5", b"\xf5\x80\x80\x80")
tc("emoji", b"\xf0\x9f\x98\x80 ok")
tc("truncated-3", b"\xe2\x82")
tc("truncated-4-end", b"ab\xf0\x9f\x98")
tc("lone-continuation", b"\x80")
tc("bom", b"\xef\xbb\xbfx")
tc("combining-first", b"\xcc\x81a")
tc("bidi-override", b"\xe2\x80\xaeevil")
tc("cr", "a\rb")
tc("over-limit-4", "12345", cfg=2)
tc("at-limit-7-raw", "1234567", cfg=0x83)
tc("invalid-and-long", b"\xff" * 20, cfg=4)
tc("control-raw", b"\x07bell", cfg=0x80)

# ---- peer_codec: lines; a leading 0x00 byte selects the field-built mode ----------------
lines = {
    "hello-open": "TCPCHAT-PEER/3 HELLO %s 10.0.0.1:8888 %s open" % (A, "ab" * 16),
    "hello-secret-ipv6": "TCPCHAT-PEER/3 HELLO %s [::1]:9 n secret" % B,
    "auth": "AUTH " + "0f" * 32,
    "error": "ERROR duplicate link",
    "hb": "HB %s 1 10.0.0.1:8888 1 -" % A,
    "hb-unchanged": "HB %s 2 10.0.0.1:8888 1 =" % A,
    "hb-neighbors": "HB %s 7 h:1 3 %s,%s" % (A, A, B),
    "state-empty": "STATE %s 2 - -" % A,
    "state-full": "STATE %s 3 lobby,a/b ann:123,bob:%d" % (A, 2**63 - 1),
    "room-join": "ROOM %s 4 + lobby" % A,
    "room-leave": "ROOM %s 5 - lobby" % A,
    "claim": "CLAIM %s 6 alice 111546405171200000" % A,
    "reply-yes": "REPLY %s 7 %s alice 111546405171200000 yes" % (B, A),
    "reply-no": "REPLY %s 8 %s alice 5 no" % (B, A),
    "release": "RELEASE %s 9 alice 111546405171200000" % A,
    "bye": "BYE %s 10" % A,
    "load": "LOAD %s 11 3 lobby:2,x:1" % A,
    "load-empty": "LOAD %s 12 0 -" % A,
    "msg": "MSG %s 1 lobby Alice hello  world " % A,
    "msg-combining": "MSG %s 2 r u \u0301accent" % A,
    "msg-empty-text": "MSG %s 3 r u " % A,
    "bad-verb": "FOO %s 1" % A,
    "bad-node-upper": "BYE 0123456789ABCDEF 1",
    "bad-seq-plus": "BYE %s +1" % A,
    "bad-seq-overflow": "BYE %s 9223372036854775808" % A,
    "bad-name-upper": "CLAIM %s 1 Alice 5" % A,
    "bad-list-empty-item": "HB %s 1 h:1 1 %s," % (A, A),
    "bad-address": "HB %s 1 nocolon 1 -" % A,
    "bad-port": "HB %s 1 h:65536 1 -" % A,
    "bad-fields": "REPLY %s 1 %s alice 5" % (A, B),
    "leading-zeros": "BYE %s 007" % A,
    "crlf-lines": "BYE %s 1\r\nROOM %s 2 + x\r\n" % (A, A),
}
for name, line in lines.items():
    data = line if line.endswith("\n") else line + "\n"
    write("peer_codec", name, data)
write("peer_codec", "not-utf8", b"MSG " + A.encode() + b" 1 r u \xff\xfe\n")
write("peer_codec", "all-verbs", "".join(l + "\n" for l in lines.values() if not l.endswith("\n")))
# Field-built: [0][origin 5 bytes][seq 1+][kind][fields...] repeated.
write("peer_codec", "built-every-kind", bytes([0]) + b"".join(
    bytes([1, 2, 3, 4, 5, 0, 7, k, 3, 65, 66, 67, 2, 1, 9, 9, 9, 2, 0, 1, 4, 5]) for k in range(12)))

# ---- cluster: [cfg][skew][op args...]; see Fuzz/cluster/ClusterFuzz.swift -------------------
LOGIN, LOGOUT, DELIVER, DELIVERN, DROP, HEAL, ADVANCE, SAY, INJECT, RAW, RACE, MERGE, SETTLE, STOP, BCAST = range(15)


def login(node, name, upper=False, room=0):
    return [LOGIN, node | (name << 2) | (0x10 if upper else 0) | (room << 5)]


def cl(name, cfg, ops, skew=0):
    write("cluster", name, bytes([cfg, skew]) + bytes(ops))


MESH2, MESH3, CHAIN3, NONE3 = 0x02, 0x03, 0x05, 0x01
cl("two-nodes-login-say", MESH2, [SETTLE, 0] + login(0, 0) + login(1, 1) + [SETTLE, 0, SAY, 0, SAY, 1, SETTLE, 0])
cl("race-two-nodes", MESH2, [SETTLE, 0, RACE, 0x04, 1, 2])
cl("race-three-mesh", MESH3, [SETTLE, 0, RACE, 0x10, 5, 6, RACE, 0x25, 7, 8])
cl("race-chain", CHAIN3, [SETTLE, 0, RACE, 0x00, 3, 4, RACE, 0x31, 9, 9], skew=0x24)
cl("same-name-twice", MESH3, [SETTLE, 0] + login(0, 2) + login(1, 2, True) + login(2, 2) + [SETTLE, 3, LOGOUT, 0, SETTLE, 0] + login(2, 2) + [SETTLE, 1])
cl("partition-heal", MESH3, [SETTLE, 0, DROP, 1, DROP, 2, ADVANCE, 6, SETTLE, 0] + login(0, 0) + [ADVANCE, 0] + login(2, 0, True) + [SETTLE, 0, HEAL, 1, HEAL, 2, SETTLE, 0, SAY, 0, SETTLE, 0])
cl("dead-node-timeout", MESH3, [SETTLE, 0] + login(2, 3) + [SETTLE, 0, DROP, 1, DROP, 2, ADVANCE, 4, ADVANCE, 4, ADVANCE, 4, ADVANCE, 4, SETTLE, 0] + login(0, 3) + [SETTLE, 0])
cl("abandon-pending", MESH2, [SETTLE, 0] + login(0, 1) + [LOGOUT, 0, SETTLE, 0] + login(1, 1) + [SETTLE, 0])
cl("chain-chat", CHAIN3, [SETTLE, 0] + login(0, 0, room=1) + login(2, 1, room=1) + [SETTLE, 0, SAY, 0, SAY, 1, DELIVERN, 0x35, SAY, 0, SETTLE, 2])
cl("shortcut-link", CHAIN3, [SETTLE, 0] + login(0, 0) + login(2, 1) + [SETTLE, 0, SAY, 0, DELIVER, 0, HEAL, 1, SAY, 0, SETTLE, 0])
cl("lost-lines-on-drop", MESH2, [SETTLE, 0] + login(0, 0) + [DROP, 0, ADVANCE, 4, HEAL, 0, ADVANCE, 4, SETTLE, 0, ADVANCE, 4, SETTLE, 0])
cl("tick-one-side", MESH2, [SETTLE, 0, ADVANCE, 0x0E, ADVANCE, 0x0E, ADVANCE, 0x0E] + login(0, 2) + login(1, 2) + [SETTLE, 0])
cl("phantom-state-claim", MESH3, [SETTLE, 0, INJECT, 0, 0x00, 0, 0, 0, INJECT, 1, 0x02, 0, 0x00, 0x03, 9, 9, INJECT, 0, 0x06, 0, 0x01, 0, 3, SETTLE, 0] + login(0, 1) + [SETTLE, 0, INJECT, 2, 0x0C, 0, 0, 0, SETTLE, 0])
cl("phantom-gap-and-bye", MESH2, [SETTLE, 0, INJECT, 0, 0x00, 2, 0, 0, INJECT, 0, 0x02, 0, 0, 0x01, 5, ADVANCE, 3, INJECT, 1, 0x0C, 0, 0, 0, SETTLE, 0])
cl("phantom-chat", MESH2, [SETTLE, 0] + login(1, 0) + [SETTLE, 0, INJECT, 0, 0x10, 0, 1, 0, INJECT, 0, 0x10, 2, 2, 0, ADVANCE, 3, SETTLE, 0])
raw = "HB 0000000000000001 1 10.9.9.9:1 1 -".encode()
cl("raw-garbage-drops-link", MESH2, [SETTLE, 0, RAW, 1, 7] + list(b"garbage") + [RAW, 0, len(raw)] + list(raw) + [ADVANCE, 4, SETTLE, 0])
cl("merge-commute", MESH2, [MERGE, 1, 3, 0x80, 1, 0x09, 0x12, 0x02, 0x05, 1, 0x0F, 1, 2, 3, 4, 0x03, 0, 1, 0x06, 5, 4])
cl("stop-with-bye", MESH3, [SETTLE, 0] + login(2, 3) + login(1, 0) + [SETTLE, 0, STOP, 2 << 1, SETTLE, 0] + login(0, 3) + [SETTLE, 0, SAY, 0, SETTLE, 0])
cl("kill-pending-claim", MESH3, [SETTLE, 0] + login(2, 1) + [SETTLE, 0] + login(0, 2) + [STOP, (1 << 1) | 1, ADVANCE, 5, ADVANCE, 5, ADVANCE, 5, SETTLE, 0] + login(0, 1) + [SETTLE, 0])
cl("bcast-chain", CHAIN3, [SETTLE, 0] + login(0, 0, room=2) + login(2, 1, room=2) + login(1, 2, room=2) + [SETTLE, 0, BCAST, 0, 1, BCAST, 1, 2, DROP, 0, ADVANCE, 4, BCAST, 2, 3, HEAL, 0, BCAST, 0, 4])
cl("long-quiet", NONE3, [HEAL, 0, HEAL, 2] + login(1, 0) + [ADVANCE, 7, SETTLE, 0, ADVANCE, 7, SETTLE, 0])

# Hostile mode (byte 0 bit 6): INJECT is a hostile phantom [node, kind, a, b]; see ClusterFuzz.swift
# (H_BYE names a real node only with FUZZ_CLUSTER_FORGE_BYE=1, else a made-up origin).
HOSTILE = 0x40
H_ORIGINS, H_HB_LIST, H_REPLY, H_BYE, H_LOAD, H_CLAIM, H_STATE, H_MALFORMED = range(8)


def hostile(node, kind, a=0, b=0):
    return [INJECT, node, kind, a, b]


cl("hostile-origin-flood", MESH3 | HOSTILE, [SETTLE, 0] + hostile(0, H_ORIGINS, 255, 1) + login(1, 0) + [ADVANCE, 4, SETTLE, 0, ADVANCE, 6, ADVANCE, 6, SETTLE, 0])
cl("hostile-forged-replies", MESH2 | HOSTILE, [SETTLE, 0] + login(0, 1) + hostile(1, H_REPLY, 1, 0x00) + hostile(1, H_REPLY, 1, 0x01) + hostile(0, H_REPLY, 1, 0x81) + [SETTLE, 0, ADVANCE, 5, ADVANCE, 5, SETTLE, 0])
cl("hostile-bye-real-node", MESH3 | HOSTILE, [SETTLE, 0] + hostile(0, H_BYE, 3, 1) + hostile(2, H_BYE, 3, 0x81) + login(0, 2) + [SETTLE, 0, ADVANCE, 4, SETTLE, 0])
cl("hostile-load-hb-state", MESH2 | HOSTILE, [SETTLE, 0] + hostile(0, H_LOAD, 7, 0) + hostile(0, H_LOAD, 7, 1) + hostile(1, H_HB_LIST, 80, 0) + hostile(1, H_HB_LIST, 80, 1) + hostile(0, H_STATE) + hostile(1, H_CLAIM, 2, 0) + login(0, 2) + [ADVANCE, 5, ADVANCE, 5, SETTLE, 0])
cl("hostile-malformed", MESH2 | HOSTILE, [SETTLE, 0] + hostile(0, H_MALFORMED, 20, 0) + hostile(1, H_MALFORMED, 30, 1) + login(1, 3) + [SETTLE, 0])

# ---- http_request: [cfg][head] ---------------------------------------------------------------
# cfg bits 0-3: prefix cut (sixteenths of the head), bit 4: --web-origins http://a.example, bit 5: *.
def hr(name, head, cfg=0x08):
    write("http_request", name, bytes([cfg]) + (head.encode() if isinstance(head, str) else head))


UPGRADE = ("GET /ws HTTP/1.1\r\nHost: localhost:8888\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:8888\r\n\r\n")
hr("page", "GET / HTTP/1.1\r\nHost: localhost:8888\r\nAccept: text/html\r\n\r\n")
hr("page-head-lf", "HEAD /?x=1 HTTP/1.0\nUser-Agent: t\n\n")
hr("upgrade", UPGRADE)
hr("upgrade-foreign-origin", UPGRADE.replace("http://localhost:8888", "http://a.example"), cfg=0x18)
hr("upgrade-any-origin", UPGRADE.replace("http://localhost:8888", "null"), cfg=0x2F)
hr("upgrade-bad-version", UPGRADE.replace("Version: 13", "Version: 8"))
hr("upgrade-short-key", UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="))
hr("not-found", "GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n")
hr("post", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
hr("no-host", "GET / HTTP/1.1\r\n\r\n")
hr("folded", "GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n")
hr("leading-crlf", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
hr("incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", cfg=0x0F)


# ---- websocket_codec: [cfg][chunk][bytes] -----------------------------------------------------
# cfg bit 0: 0 raw stream / 1 program [nfrag-1][mask 4][len per fragment][payloads]...;
# bits 1-3 limit index (4096, 1, 2, 3, 8, 16, 64, 300); chunk: read size - 1 (0 = one read).
def mframe(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d", masked=True, rsv=0):
    out = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        out += bytes([m | n])
    else:
        out += bytes([m | 126]) + n.to_bytes(2, "big")
    if masked:
        out += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


def wc(name, data, cfg=0, chunk=0):
    write("websocket_codec", name, bytes([cfg, chunk]) + data)


wc("text", mframe(1, b"alice_room") + mframe(1, "h\u00e9llo".encode()))
wc("text-byte-by-byte", mframe(1, b"hello") + mframe(1, b"again"), chunk=0)
wc("fragments-with-ping", mframe(1, b"he", fin=False) + mframe(9, b"p") + mframe(0, b"ll", fin=False) + mframe(0xA, b"") + mframe(0, b"o"), chunk=2)
wc("utf8-split", mframe(1, b"caf\xc3", fin=False) + mframe(0, b"\xa9"))
wc("utf8-bad", mframe(1, b"ab\xc3", fin=False) + mframe(0, b"\x28"))
wc("unmasked", mframe(1, b"hi", masked=False))
wc("binary", mframe(2, b"\x01\x02"))
wc("reserved-bits", mframe(1, b"x", rsv=0x40))
wc("long-ping", mframe(9, b"p" * 126))
wc("close-1000", mframe(8, b"\x03\xe8bye"))
wc("close-bad-code", mframe(8, b"\x03\xed"))
wc("too-long", mframe(1, b"x" * 300), cfg=0x06)
wc("len16", mframe(1, b"y" * 200), chunk=7)
wc("len64-header", bytes([0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + b"\x01\x02\x03\x04")
wc("program-two", bytes([1, 0x37, 0xfa, 0x21, 0x3d, 3, 2]) + b"abcde" + bytes([0, 1, 2, 3, 4, 5]) + b"xyzzy", cfg=1, chunk=3)
wc("program-limit", bytes([2, 9, 9, 9, 9, 4, 4, 4]) + b"0123456789ab", cfg=0x09)

if __name__ == "__main__":
    print("seeds written under", ROOT, file=sys.stderr)
