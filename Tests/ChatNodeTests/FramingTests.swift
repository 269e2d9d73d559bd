/// docs/protocol.md §2: messages end at `\n` or at a silence; the handshake decides how the node
/// frames what it sends (line sessions get `\n`, raw sessions get bare messages).
import Foundation
import Testing
import TestSupport

@Suite("Framing")
struct FramingTests {
    /// A silence window wide enough that a short pause between two writes, on a busy
    /// machine, stays well inside it.
    static let wideSilence = ["--silence-ms", "400"]
    static let shortPause = 0.03

    @Test func rawHandshakeInTwoPiecesWithinTheSilenceIsOneHandshake() throws {
        try withNode(Self.wideSilence) { node in
            let c = try LineClient.connect(port: node.port, label: "alice")
            try c.send("ali")
            Thread.sleep(forTimeInterval: Self.shortPause)   // two TCP segments, one message
            try c.send("ce_room")
            try c.expectBytes("200")
            try c.send("hi")
            try c.expectBytes("alice - hi")
        }
    }

    @Test func lineHandshakeInTwoPiecesIsOneHandshake() throws {
        try withNode(Self.wideSilence) { node in
            let c = try LineClient.connect(port: node.port, label: "alice")
            try c.send("alice_")
            Thread.sleep(forTimeInterval: Self.shortPause)
            try c.send("room\n")
            try c.expectBytes("200\n")
        }
    }

    @Test func lineMessageSplitAcrossWritesIsOneMessage() throws {
        try withNode(Self.wideSilence) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("hel")
            Thread.sleep(forTimeInterval: Self.shortPause)
            try alice.send("lo wor")
            Thread.sleep(forTimeInterval: Self.shortPause)
            try alice.send("ld\n")
            #expect(try bob.readLine() == "alice - hello world")
        }
    }

    @Test func crlfLineEndingsAreHandled() throws {
        try withNode { node in
            let alice = try LineClient.connect(port: node.port, label: "alice")
            try alice.send("alice_room\r\n")
            try alice.expectBytes("200\n")
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("hi\r\n")
            #expect(try bob.readLine() == "alice - hi")
            #expect(try alice.readLine() == "alice - hi")
        }
    }

    @Test func bytesAfterTheHandshakeLineInOnePacketAreMessages() throws {
        try withNode { node in
            let alice = try LineClient.connect(port: node.port, label: "alice")
            try alice.send("alice_room\nfirst\nsecond\n")
            try alice.expectBytes("200\nalice - first\nalice - second\n")
        }
    }

    @Test func lineSessionMessageEndedBySilenceIsDelivered() throws {
        try withNode { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            try alice.send("no newline here")
            // A line session gets its `\n` even when the message itself came without one.
            try alice.expectBytes("alice - no newline here\n")
        }
    }

    @Test func rawSessionGetsBare200ThenBareMessages() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            try alice.send("one")                 // ended by silence
            try alice.expectBytes("alice - one")
            try alice.send("two\n")               // ended by a newline
            try alice.expectBytes("alice - two")
            // Had either echo carried a `\n`, these bytes would not come next.
            let bob = try LineClient.join("bob", "room", port: node.port)
            try bob.send("three\n")
            try alice.expectBytes("bob - three")
        }
    }

    @Test func lineMessageReachesRawReceiverWithoutNewline() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try bob.send("yo\n")
            try alice.expectBytes("bob - yo")
            try bob.send("again\n")
            try alice.expectBytes("bob - again")
            // ...while the line sender still gets its lines.
            try bob.expectBytes("bob - yo\nbob - again\n")
        }
    }

    @Test func rawMessageReachesLineReceiverWithNewline() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("hey bob")
            try bob.expectBytes("alice - hey bob\n")
            try alice.expectBytes("alice - hey bob")
        }
    }

    @Test func rawSessionMessagesSeparatedBySilenceStaySeparate() throws {
        try withNode { node in
            let alice = try LineClient.joinRaw("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("first")
            #expect(try bob.readLine() == "alice - first")
            try alice.send("second")
            #expect(try bob.readLine() == "alice - second")
        }
    }
}
