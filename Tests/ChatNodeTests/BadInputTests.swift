/// docs/protocol.md §3–4: bad input gets a `* ` notice to its sender only; nothing is relayed,
/// and the session stays up.
import ChatCore
import Testing
import TestSupport

@Suite("Bad input")
struct BadInputTests {
    /// alice and bob in one room; alice sends `bad`, must get `notice`, and bob must get
    /// nothing: alice's next good message is the next thing either of them sees.
    private func expectRefused(_ bad: [UInt8], notice: String, flags: [String] = []) throws {
        #expect(notice.hasPrefix("* "))
        try withNode(flags) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send(bytes: bad)
            #expect(try alice.readLine() == notice, "after sending \(describe(bad))")
            try alice.send("still ok\n")
            #expect(try alice.readLine() == "alice - still ok")
            #expect(try bob.readLine() == "alice - still ok", "bob must get nothing of \(describe(bad))")
        }
    }

    @Test("invalid UTF-8 is refused with a notice", arguments: [
        [0x68, 0xFF, 0xFE, 0x0A],          // bytes that never occur in UTF-8
        [0x61, 0x80, 0x62, 0x0A],          // lone continuation byte
        [0xC0, 0xAF, 0x0A],                // overlong `/`
        [0xED, 0xA0, 0x80, 0x0A],          // UTF-16 surrogate
        [0xE2, 0x82, 0x0A],                // truncated sequence
        [0xF4, 0x90, 0x80, 0x80, 0x0A],    // past U+10FFFF
    ] as [[UInt8]])
    func invalidUTF8GetsNoticeAndIsNotRelayed(_ bytes: [UInt8]) throws {
        try expectRefused(bytes, notice: Notice.invalidUTF8)
    }

    @Test("control characters are refused with a notice", arguments: [
        Array("\u{1B}[31mred\n".utf8),     // ESC: a terminal escape
        Array("del\u{7F}ete\n".utf8),      // DEL
        Array("next\u{85}line\n".utf8),    // C1 NEL (U+0085)
        Array("csi\u{9B}2J\n".utf8),       // C1 CSI (U+009B)
        Array("bell\u{07}\n".utf8),        // BEL
        Array("back\u{08}space\n".utf8),   // BS
        [0x6E, 0x75, 0x00, 0x6C, 0x0A],   // NUL
        Array("cr\rinside\n".utf8),        // a CR that does not end the line
    ] as [[UInt8]])
    func controlCharacterGetsNoticeAndIsNotRelayed(_ bytes: [UInt8]) throws {
        try expectRefused(bytes, notice: Notice.controlCharacter)
    }

    @Test func tabIsAllowed() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("a\tb\n")
            #expect(try bob.readLine() == "alice - a\tb")
        }
    }

    @Test func overLongMessageGetsNoticeAndIsNotRelayed() throws {
        try expectRefused(Array(String(repeating: "x", count: 65).utf8) + [0x0A],
                          notice: Notice.tooLong(64), flags: ["--max-message-bytes", "64"])
    }

    @Test func messageOfExactlyTheLimitIsRelayed() throws {
        try withNode(["--max-message-bytes", "64"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            let text = String(repeating: "y", count: 64)
            try alice.send(text + "\r\n")   // the line ending does not count
            #expect(try bob.readLine() == "alice - \(text)")
        }
    }

    @Test func overLongMessageInPiecesGetsOneNotice() throws {
        // Too long before its newline arrives: one notice, and the tail that follows is
        // discarded with it rather than relayed as a message of its own.
        try withNode(["--max-message-bytes", "64", "--silence-ms", "2000"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send(String(repeating: "x", count: 100))
            try alice.send(String(repeating: "z", count: 50) + "\n")
            try alice.send("ok\n")
            #expect(try alice.readLine() == Notice.tooLong(64))
            #expect(try alice.readLine() == "alice - ok")
            #expect(try bob.readLine() == "alice - ok")
        }
    }

    @Test func noticeToRawSessionIsBare() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            try alice.send(bytes: [0x61, 0xFF, 0x62])    // ended by silence
            try alice.expectBytes(Notice.invalidUTF8)
            try alice.send("fine")
            try alice.expectBytes("alice - fine")
        }
    }

    @Test func sessionSurvivesManyRefusals() throws {
        try withNode(["--rate-limit", "0"]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            for _ in 0..<20 { try alice.send(bytes: [0x1B, 0x5B, 0x32, 0x4A, 0x0A]) }
            let notices = try alice.readLines(20)
            #expect(notices.allSatisfy { $0 == Notice.controlCharacter }, "got \(notices)")
            try alice.send("done\n")
            #expect(try bob.readLine() == "alice - done")
        }
    }
}
