"""What the web tests share (browser.py, ws_edge.py): a node process on loopback, a plain
line client, and the one-line-per-check reporting. Imported from the scripts' own folder
(Python puts a script's folder first on sys.path)."""
import re
import signal
import socket
import subprocess
import time

TIMEOUT = 10.0


class Node:
    """`tcp_chat server` on 127.0.0.1, an ephemeral port; with `--metrics` in `flags`, the
    metrics address it printed as `metrics`."""

    def __init__(self, binary, *flags):
        self.proc = subprocess.Popen([binary, "server", "-a", "127.0.0.1", "-p", "0", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            raise SystemExit(f"node printed {line!r} instead of `listening on`")
        self.port = int(m.group(1))
        self.metrics = None
        line = self.proc.stdout.readline() if "--metrics" in flags else ""
        m = re.match(r"metrics on (\S+)", line)
        if m:
            self.metrics = m.group(1)

    @property
    def page_url(self):
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self):
        """SIGTERM; the exit status (0 for a clean stop; under AddressSanitizer a leak makes it non-zero)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class TCP:
    """A line client of the plain protocol."""

    def __init__(self, port, handshake):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.s.sendall(handshake.encode() + b"\n")

    def line(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.buf:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.s.recv(4096)
            if not data:
                raise EOFError("closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def say(self, text):
        self.s.sendall(text.encode() + b"\n")

    def close(self):
        self.s.close()


def checker(name):
    """`check(cond, what)` for the script `name`: prints `name: what`, or `name: FAILED: what`
    and exits 1."""
    def check(cond, what):
        if not cond:
            print(f"{name}: FAILED: {what}", flush=True)
            raise SystemExit(1)
        print(f"{name}: {what}", flush=True)
    return check
