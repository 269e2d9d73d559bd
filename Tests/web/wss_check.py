#!/usr/bin/env python3
"""The web client over TLS (docs/tls.md, docs/protocol.md "Web clients"): `https://` serves
the page and `wss://` the sessions on the node's one port, verified against a CA made
here, while a plaintext client chats in the same room.

    python3 Tests/web/wss_check.py --bin .build/debug/tcp_chat

Prints `wss_check: ok` at the end; exits 1 at the first failed check. Every wait is bounded.
"""
import argparse
import asyncio
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request

import websockets

TIMEOUT = 10.0


def fail(why):
    print(f"wss_check: FAILED: {why}", flush=True)
    sys.exit(1)


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-subj", "/CN=wss check CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/node.key", "-out", f"{d}/node.csr", "-subj", "/CN=localhost")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", f"{d}/node.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{d}/node.pem", "-extfile", f"{d}/ext")


async def check(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    # The page over https, verified.
    page = urllib.request.urlopen(f"https://localhost:{port}/", context=ctx, timeout=TIMEOUT).read().decode()
    if "<title>tcp_chat</title>" not in page:
        fail(f"https:// did not serve the page: {page[:200]!r}")
    print("wss_check: the page over https", flush=True)
    # A plaintext line client in the room.
    plain = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    plain.sendall(b"bob_room\n")
    f = plain.makefile("rb")
    if f.readline() != b"200\n":
        fail("the plaintext client was not logged in")
    async with websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx, origin=f"https://localhost:{port}",
                                  open_timeout=TIMEOUT) as ws:
        await ws.send("alice_room")
        if (r := await asyncio.wait_for(ws.recv(), TIMEOUT)) != "200":
            fail(f"wss login answered {r!r}")
        await ws.send("hello over wss")
        if (r := await asyncio.wait_for(ws.recv(), TIMEOUT)) != "alice - hello over wss":
            fail(f"wss echo was {r!r}")
        if (line := f.readline()) != b"alice - hello over wss\n":
            fail(f"the plaintext client got {line!r}")
        plain.sendall(b"hi alice\n")
        if (r := await asyncio.wait_for(ws.recv(), TIMEOUT)) != "bob - hi alice":
            fail(f"the wss session got {r!r}")
    print("wss_check: a wss session and a plaintext client chat in one room", flush=True)
    plain.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        make_certs(d)
        node = subprocess.Popen([args.bin, "server", "-a", "127.0.0.1", "-p", "0", "--tls-cert", f"{d}/node.pem",
                                 "--tls-key", f"{d}/node.key", "--tls-ca", f"{d}/ca.pem"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            m = re.match(r"listening on 127\.0\.0\.1:(\d+)", node.stdout.readline())
            if not m:
                fail("the node did not start")
            asyncio.run(check(int(m.group(1)), f"{d}/ca.pem"))
        finally:
            node.terminate()
            try:
                code = node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.kill()
                fail("the node did not stop on SIGTERM")
        if code != 0:
            fail(f"the node exited {code} on SIGTERM")
    print("wss_check: ok", flush=True)


if __name__ == "__main__":
    main()
