import Foundation
import Glibc
import Testing
import TestSupport

/// The client against a scripted node (a socket in the test): handshake replies and
/// framing edge cases the real servers produce only by chance.
@Suite struct FakeNodeTests {
    private func client(_ node: FakeNode, _ extra: [String] = [], user: String = "alice") throws -> Child {
        try Child(try TestEnv.requireBinary(), ["client", "-a", "127.0.0.1", "-p", "\(node.port)", "-u", user, "-c", "room"] + extra)
    }

    /// Starts the client and takes its connection once its handshake has arrived: a line,
    /// or with `--raw` the 10 bare bytes of `alice_room`.
    private func handshaken(_ node: FakeNode, _ extra: [String] = [],
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> (Child, RawSocket) {
        let alice = try client(node, extra)
        let conn = try node.accept()
        if extra.contains("--raw") {
            #expect(conn.read { $0.count >= 10 }, sourceLocation: sourceLocation)
        } else {
            #expect(conn.read { $0.last == UInt8(ascii: "\n") }, sourceLocation: sourceLocation)
        }
        return (alice, conn)
    }

    @Test func lineSessionWithMessagesBehindThe200() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--line"])
        #expect(conn.receivedText == "alice_room\n")

        conn.send("200\nbob - early\n")   // the reply and a message in one read
        #expect(alice.stdout.wait(for: "Connected to 127.0.0.1:\(node.port) as alice in room room. Type /exit to leave.\nbob - early\n", timeout: 10))

        alice.write("hello\n\nsecond\n")   // the empty line is not sent
        #expect(conn.read(untilContains: "second\n"))
        #expect(conn.receivedText == "alice_room\nhello\nsecond\n")

        // Terminal controls and invalid UTF-8 from the network are shown, never obeyed.
        var bytes = Array("ann - \u{1B}[31mred\u{1B}]0;title\u{07} \u{9B}x ".utf8) + [0xFF, 0x0D, 0x0A]
        _ = bytes.withUnsafeMutableBytes { send(conn.fd, $0.baseAddress, $0.count, 0) }
        #expect(alice.stdout.wait(for: "ann - ^[[31mred^[]0;title^G M-^[x \u{FFFD}\n", timeout: 5))

        conn.send("/exit\n")
        #expect(alice.waitForExit(timeout: 5) == 0)
        #expect(alice.stdout.wait(for: "The node closed the connection.\n", timeout: 5))
    }

    @Test func rawSessionSendsBareMessagesApartAndLeavesByClosing() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--raw"])
        conn.send("200")
        #expect(alice.stdout.wait(for: "Connected to", timeout: 10))

        alice.write("one\ntwo\n")
        #expect(conn.read(untilContains: "one"))
        let first = Date()
        #expect(conn.read(untilContains: "two"))
        // Bare, and spaced so that a server framing by silence sees two messages.
        #expect(Date().timeIntervalSince(first) >= 0.15)
        #expect(conn.receivedText == "alice_roomonetwo")

        conn.send("bob - hi")
        #expect(alice.stdout.wait(for: "bob - hi\n", timeout: 5))
        alice.closeStdin()
        // Leaving a raw session is EOF, as the original client does; then the node closes.
        #expect(conn.read(timeout: 5) { _ in false } == false)   // returns at EOF
        #expect(conn.receivedText == "alice_roomonetwo")
        conn.send("/exit")
        _ = shutdown(conn.fd, Int32(SHUT_RDWR))
        #expect(alice.waitForExit(timeout: 5) == 0)
    }

    @Test func slashExitTypedByTheUserIsSentInALineSession() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--line"])
        conn.send("200\n")
        alice.write("bye all\n/exit\nnever sent\n")
        #expect(conn.read(untilContains: "/exit\n"))
        #expect(conn.read(timeout: 5) { _ in false } == false)   // then EOF from the client
        #expect(conn.receivedText == "alice_room\nbye all\n/exit\n")
        #expect(alice.waitForExit(timeout: 5) == 0)
    }

    @Test func sigtermSaysGoodbyeAndExitsWith143() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--line"])
        conn.send("200\n")
        #expect(alice.stdout.wait(for: "Connected to", timeout: 10))
        kill(alice.process.processIdentifier, SIGTERM)
        #expect(conn.read(timeout: 5) { _ in false } == false)   // "/exit\n", then EOF
        #expect(conn.receivedText == "alice_room\n/exit\n")
        #expect(alice.waitForExit(timeout: 5) == 143)
    }

    @Test func sigintIsAnOrdinaryWayOut() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--raw"])
        conn.send("200")
        #expect(alice.stdout.wait(for: "Connected to", timeout: 10))
        kill(alice.process.processIdentifier, SIGINT)
        #expect(conn.read(timeout: 5) { _ in false } == false)   // raw session: just EOF
        #expect(conn.receivedText == "alice_room")
        #expect(alice.waitForExit(timeout: 5) == 0)
    }

    @Test func malformedReplyExitsWithCode1() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--raw"])
        conn.send("400")
        #expect(alice.waitForExit(timeout: 10) == 1)
        #expect(alice.stderr.wait(for: "The node refused the handshake as malformed (400).\n", timeout: 5))
    }

    @Test func closeWithoutAReplyExitsWithCode1() throws {
        let node = try FakeNode()
        let alice = try client(node)
        do {
            let conn = try node.accept()
            #expect(conn.read { $0.count >= 10 })
        }   // closed here
        #expect(alice.waitForExit(timeout: 10) == 1)
        #expect(alice.stderr.wait(for: "closed the connection without answering the handshake", timeout: 5))
    }

    @Test func nodeDroppingTheSessionWithoutExitIsCode1() throws {
        let node = try FakeNode()
        let alice = try client(node, ["--line"])
        do {
            let conn = try node.accept()
            #expect(conn.read { $0.last == UInt8(ascii: "\n") })
            conn.send("200\n* you were replaced by a newer login\n")
            #expect(alice.stdout.wait(for: "* you were replaced", timeout: 10))
        }
        #expect(alice.waitForExit(timeout: 5) == 1)
        #expect(alice.stderr.wait(for: "The node closed the connection.\n", timeout: 5))
    }

    @Test func unreachableNodeExitsWithCode1() throws {
        let port = try freePort()
        let c = try Child(try TestEnv.requireBinary(), ["client", "-a", "127.0.0.1", "-p", "\(port)", "-u", "alice", "-c", "room"])
        #expect(c.waitForExit(timeout: 10) == 1)
        #expect(c.stderr.wait(for: "Cannot connect to 127.0.0.1:\(port): Connection refused\n", timeout: 5))
    }

    @Test func invalidNamesExitWithCode2BeforeConnecting() throws {
        let bin = try TestEnv.requireBinary()
        let c = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "9", "-u", "al ice", "-c", "room"])
        #expect(c.waitForExit(timeout: 10) == 2)
        #expect(c.stderr.wait(for: "Invalid username \"al ice\"", timeout: 5))
        let d = try Child(bin, ["client", "-a", "127.0.0.1", "-p", "9", "-u", "alice", "-c", String(repeating: "r", count: 65)])
        #expect(d.waitForExit(timeout: 10) == 2)
    }

    // MARK: - Segment boundaries (docs/protocol.md §2, "The terminal client")

    /// By default the client sends `alice_room\n`, so a node frames every message with `\n`
    /// and the client cuts at newlines only: a message split across two writes (here 300 ms
    /// apart, as a crafted segment boundary would split it) is one line, never a forged
    /// `bob - …` line of its own nor a lone `/exit`.
    @Test func defaultSessionIsLineFramedSoASplitMessageCannotForgeALine() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node)
        #expect(conn.receivedText == "alice_room\n")
        conn.send("200\n")
        #expect(alice.stdout.wait(for: "Connected to", timeout: 10))

        conn.send("mallory - aaaa")
        usleep(300_000)   // the attack: the rest of the message in a later segment
        conn.send("bob - forged\n")
        #expect(alice.stdout.wait(for: "mallory - aaaabob - forged\n", timeout: 5))

        conn.send("mallory - xx")
        usleep(300_000)
        conn.send("/exit\n")
        #expect(alice.stdout.wait(for: "mallory - xx/exit\n", timeout: 5))

        conn.send("carol - still here\n")
        #expect(alice.stdout.wait(for: "carol - still here\n", timeout: 5))
        #expect(alice.waitForExit(timeout: 0.2) == nil, "the split /exit made the client quit")
        #expect(!alice.stdout.text.contains("\nbob - forged"), "a forged line was shown:\n\(alice.stdout.text)")

        alice.write("hello\n")   // typed messages go out as lines at once
        #expect(conn.read(untilContains: "hello\n"))
        conn.send("/exit\n")
        #expect(alice.waitForExit(timeout: 5) == 0)
    }

    /// Two messages and a `/exit` glued into one write: each message is its own line, the
    /// `/exit` inside a message is text, and bidi or separator characters are shown inert.
    @Test func gluedMessagesWithAFakeExitAreShownAsTheyAre() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node)
        conn.send("200\n")
        #expect(alice.stdout.wait(for: "Connected to", timeout: 10))

        conn.send("mallory - one\nmallory - two/exit\nmallory - \u{202E}olleh\u{2028}bob - forged\u{2069}\n")
        #expect(alice.stdout.wait(for: "mallory - one\nmallory - two/exit\nmallory - <U+202E>olleh<U+2028>bob - forged<U+2069>\n", timeout: 5))
        conn.send("carol - still here\n")
        #expect(alice.stdout.wait(for: "carol - still here\n", timeout: 5))
        #expect(alice.waitForExit(timeout: 0.2) == nil, "the glued /exit made the client quit")
        conn.send("/exit\n")
        #expect(alice.waitForExit(timeout: 5) == 0)
    }

    /// The original server answers `alice_room\n` with a bare `200` (and would put us in room
    /// `room\n`): the client leaves that connection (EOF, as a client leaves the original)
    /// and hand-shakes again bare; a `403` right then (the server has not freed the name yet)
    /// is asked again. The session is raw, as with the original client.
    @Test func aBare200ToTheLineHandshakeFallsBackToTheBareOne() throws {
        let node = try FakeNode()
        let alice = try client(node)
        let probe = try node.accept()
        #expect(probe.read { $0.last == UInt8(ascii: "\n") })
        probe.send("200")
        #expect(probe.read(timeout: 5) { _ in false } == false)   // returns at the client's EOF
        #expect(probe.receivedText == "alice_room\n")              // nothing else went there
        probe.send("/exit")
        _ = shutdown(probe.fd, Int32(SHUT_RDWR))

        do {
            let early = try node.accept()
            #expect(early.read { $0.count >= 10 })
            #expect(early.receivedText == "alice_room")
            early.send("403")
            _ = shutdown(early.fd, Int32(SHUT_RDWR))
        }
        let conn = try node.accept()
        #expect(conn.read { $0.count >= 10 })
        #expect(conn.receivedText == "alice_room")
        conn.send("200")
        #expect(alice.stdout.wait(for: "Connected to 127.0.0.1:\(node.port) as alice in room room.", timeout: 10))
        alice.write("one\n")
        #expect(conn.read(untilContains: "one"))
        #expect(conn.receivedText == "alice_roomone")   // raw: bare
        conn.send("bob - hi")
        #expect(alice.stdout.wait(for: "bob - hi\n", timeout: 5))
        alice.closeStdin()
        #expect(conn.read(timeout: 5) { _ in false } == false)
        _ = shutdown(conn.fd, Int32(SHUT_RDWR))
        #expect(alice.waitForExit(timeout: 5) == 0)
        #expect(alice.stderr.text == "")
    }

    /// A `400` to the line handshake also falls back; a `403` to the bare one then is a
    /// real refusal (our name was never accepted): no retry.
    @Test func a400ToTheLineHandshakeFallsBackAndA403ThenIsFinal() throws {
        let node = try FakeNode()
        let alice = try client(node)
        do {
            let probe = try node.accept()
            #expect(probe.read { $0.last == UInt8(ascii: "\n") })
            probe.send("400")
            _ = shutdown(probe.fd, Int32(SHUT_RDWR))
        }
        let conn = try node.accept()
        #expect(conn.read { $0.count >= 10 })
        #expect(conn.receivedText == "alice_room")
        conn.send("403")
        _ = shutdown(conn.fd, Int32(SHUT_RDWR))
        #expect(alice.waitForExit(timeout: 10) == 1)
        #expect(alice.stderr.wait(for: "The name alice is already connected.\n", timeout: 5))
    }

    /// `--line` never falls back: a bare `200` is refused with a clear error.
    @Test func lineOnlyRefusesAServerThatAnswersBare() throws {
        let node = try FakeNode()
        let (alice, conn) = try handshaken(node, ["--line"])
        conn.send("200")
        #expect(alice.waitForExit(timeout: 10) == 1)
        #expect(alice.stderr.wait(for: "it is not a tcp_chat node (try without --line).\n", timeout: 5))
        #expect(!alice.stdout.text.contains("Connected"))
    }

    @Test func lineAndRawExcludeEachOther() throws {
        let c = try Child(try TestEnv.requireBinary(), ["client", "-p", "9", "-u", "alice", "-c", "room", "--line", "--raw"])
        #expect(c.waitForExit(timeout: 10) != 0)
        #expect(c.stderr.wait(for: "--line and --raw exclude each other", timeout: 5))
    }
}
