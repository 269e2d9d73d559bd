#!/usr/bin/env python3
"""The chat page in a real browser: Debian's Chromium, headless, driven by Playwright.

    python3 Tests/web/browser.py --bin .build/debug/tcp_chat [--chromium /usr/bin/chromium] [--screenshot F.png]

A two-node cluster (B dials A). Page ann on node A, page ben on node B (a phone-sized
viewport), and a TCP client carl on node A join room `lobby`; each sends a message in turn
and every one of them sees all three messages in the same order. Only the keyboard is
used to join and send. Then: a name held by the TCP client shows the 403 sentence, a bad
name the 400 sentence with the rules; `<script>` and `<img onerror>` render as text; a
control character gets the node's notice, shown as a notice; Leave returns to the form;
a node stopping shows the lost connection and a Reconnect button. Prints one line per
check and `browser: ok (N.N s)`; exits 1 at the first failed check. Every wait is bounded.
"""
import argparse
import subprocess
import sys
import time

from playwright.sync_api import expect, sync_playwright

from webnode import TCP, Node, checker

TIMEOUT_MS = 20_000


check = checker("browser")


def join(page, url, user, room):
    """Keyboard only: the user field has the focus, Tab to the room, Enter submits."""
    page.goto(url)
    expect(page.locator("#user")).to_be_focused(timeout=TIMEOUT_MS)
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(room)
    page.keyboard.press("Enter")


def say(page, text):
    page.locator("#text").fill(text)
    page.keyboard.press("Enter")


def messages(page):
    return page.locator("#log li:not(.notice)")


def run(args):
    started = time.monotonic()
    a = Node(args.bin)
    b = Node(args.bin, "--peer", f"127.0.0.1:{a.port}")
    nodes = [a, b]
    try:
        deadline = time.monotonic() + 10
        while True:
            st = subprocess.run([args.bin, "status", "-a", "127.0.0.1", "-p", str(b.port), "--json"],
                                capture_output=True, text=True, timeout=10)
            if '"cluster_nodes":2' in st.stdout.replace(" ", ""):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the two nodes did not link within 10 s")
            time.sleep(0.1)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            ann = browser.new_page(viewport={"width": 900, "height": 640})
            ben = browser.new_page(viewport={"width": 390, "height": 740}, is_mobile=True, has_touch=True)
            errors = []
            for pg in (ann, ben):
                pg.on("pageerror", lambda e: errors.append(str(e)))
                pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            join(ann, a.page_url, "ann", "lobby")
            expect(ann.locator("#chat")).to_be_visible(timeout=TIMEOUT_MS)
            expect(ann.locator("#text")).to_be_focused(timeout=TIMEOUT_MS)
            check(True, "ann joins lobby on node A with the keyboard alone")
            join(ben, b.page_url, "ben", "lobby")
            expect(ben.locator("#chat")).to_be_visible(timeout=TIMEOUT_MS)
            check(True, "ben joins lobby on node B (phone-sized viewport)")
            carl = TCP(a.port, "carl_lobby")
            check(carl.line() == "200", "carl (TCP) joins lobby on node A")

            # Each waits for the previous message to arrive everywhere before sending, so the
            # order is defined across senders on different nodes.
            expected = []
            for who, text in [("ann", "hello from ann"), ("ben", "hello from ben"), ("carl", "hello from carl")]:
                if who == "ann":
                    say(ann, text)
                elif who == "ben":
                    say(ben, text)
                else:
                    carl.say(text)
                expected.append(f"{who} - {text}")
                for pg in (ann, ben):
                    expect(messages(pg)).to_have_text(expected, timeout=TIMEOUT_MS)
                check(carl.line() == expected[-1], f"carl sees: {expected[-1]}")
            check(True, "both pages show the three messages in order")
            check(ann.locator("#log li.own").all_inner_texts() == ["ann - hello from ann"], "ann's own message is marked")
            check(ben.locator("#log li.own").all_inner_texts() == ["ben - hello from ben"], "ben's own message is marked")

            evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
            say(ann, evil)
            expected.append("ann - " + evil)
            expect(messages(ben)).to_have_text(expected, timeout=TIMEOUT_MS)
            check(ben.evaluate("window.pwned === undefined") and ben.locator("#log img, #log script").count() == 0,
                  "<script> and <img onerror> render as text, nothing runs")
            check(carl.line() == expected[-1], "carl gets the same text")

            say(ben, "bell\u0085")
            expect(ben.locator("#log li.notice").last).to_have_text("message holds control characters; not sent",
                                                                   timeout=TIMEOUT_MS)
            check(True, "the node's `* ` notice is shown as a notice")
            check(ben.evaluate("document.documentElement.scrollWidth <= window.innerWidth"),
                  "no horizontal scrolling on the phone-sized page")

            shot = args.screenshot
            ann.screenshot(path=shot)
            check(True, f"screenshot saved to {shot}")

            third = browser.new_page()
            third.on("pageerror", lambda e: errors.append(str(e)))
            join(third, b.page_url, "Carl", "other")
            expect(third.locator("#status")).to_contain_text("is taken", timeout=TIMEOUT_MS)
            check(third.locator("#join").is_visible(), "a name held by a TCP client on node A: the 403 sentence on node B")
            third.locator("#user").fill("no spaces")
            third.locator("#room").press("Enter")
            expect(third.locator("#status")).to_contain_text("letters (A-Z, a-z), digits and /", timeout=TIMEOUT_MS)
            check(True, "a bad name: the 400 sentence with the name rules")

            ben.locator("#leave").click()
            expect(ben.locator("#join")).to_be_visible(timeout=TIMEOUT_MS)
            expect(ben.locator("#status")).to_have_text("You left lobby.", timeout=TIMEOUT_MS)
            check(True, "Leave returns to the form")

            check(a.stop() == 0, "node A stops cleanly on SIGTERM")
            expect(ann.locator("#lost")).to_be_visible(timeout=TIMEOUT_MS)
            expect(ann.locator("#retry")).to_be_focused(timeout=TIMEOUT_MS)
            check(True, "a stopped node: the page shows the lost connection and offers Reconnect")
            ann.locator("#retry").press("Enter")
            expect(ann.locator("#status")).to_contain_text("Could not reach", timeout=TIMEOUT_MS)
            check(True, "Reconnect tries again and says when the node cannot be reached")
            # A refused WebSocket is logged by Chromium itself as a console error; anything else is ours.
            ours = [e for e in errors if "WebSocket connection to" not in e]
            check(not ours, f"no script errors on the pages ({ours})")
            browser.close()
        check(b.stop() == 0, "node B stops cleanly on SIGTERM")
    finally:
        for n in nodes:
            n.stop()
    print(f"browser: ok ({time.monotonic() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshot", default="/tmp/tcp_chat-browser.png")
    run(ap.parse_args())
