/// docs/cluster-protocol.md §3 (opening a link): with a cluster secret, both ends of a link prove they know it; a node refuses
/// a peer that cannot, and a node without a secret refuses a peer that asks for a proof.
/// A peer that sends anything malformed is disconnected and logged; the node serves on.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

extension ClusterTests {
    // MARK: Secrets

    @Test func differentSecretsAreRefused() throws {
        let x = try ClusterTempFile("the secret called X\n", name: "x")
        let y = try ClusterTempFile("the secret called Y\n", name: "y")
        try withCluster { nodes in
            let a = try nodes.start("A", ["--cluster-secret-file", x.path])
            let b = try nodes.start("B", ["--cluster-secret-file", y.path, "--peer", a.address])
            try expectRefusedLink(a, b)
        }
    }

    @Test func sameSecretLinks() throws {
        let x = try ClusterTempFile("the secret called X\n", name: "x")
        // The same secret: trailing whitespace is not part of it (docs/operations.md, "The cluster secret").
        let x2 = try ClusterTempFile("the secret called X \t\r\n\n", name: "x2")
        try withCluster { nodes in
            let a = try nodes.start("A", ["--cluster-secret-file", x.path])
            let b = try nodes.start("B", ["--cluster-secret-file", x2.path, "--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([a, b])
            try awaitSharedNames([b, a])
            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: b)
            try alice.send("secretly\n")
            try expectNextLine(bob, "alice - secretly")
            for n in [a, b] {
                #expect(n.logCount("peer link refused") == 0, "\(n.name) refused a link\n\(n.stderrTail())")
                #expect(!n.stderr.contains("no cluster secret"), "\(n.name) has a secret but warns its cluster is open")
                #expect(!n.stderr.contains("the secret called X"), "\(n.name) logged the secret")
            }
        }
    }

    @Test(arguments: [true, false])
    func secretAndNoSecretAreRefused(dialerHasSecret: Bool) throws {
        let x = try ClusterTempFile("the secret called X\n", name: "x")
        let withSecret = ["--cluster-secret-file", x.path]
        try withCluster { nodes in
            let a = try nodes.start("A", dialerHasSecret ? [] : withSecret)
            let b = try nodes.start("B", (dialerHasSecret ? withSecret : []) + ["--peer", a.address])
            try expectRefusedLink(a, b)
            let open = dialerHasSecret ? a : b
            #expect(open.stderr.contains("no cluster secret"), "the node without a secret did not warn that its cluster is open\n\(open.stderrTail())")
        }
    }

    @Test func theSecretNeverCrossesTheWireAndABadProofIsRefused() throws {
        let secret = "s3cr3t-on-the-wire-check"
        let file = try ClusterTempFile(secret + "\n", name: "wire")
        try withCluster { nodes in
            let a = try nodes.start("A", ["--cluster-secret-file", file.path])
            let peer = try LineClient.connect(port: a.port, label: "fake-peer")
            try peer.send("TCPCHAT-PEER/3 HELLO 0123456789abcdef 127.0.0.1:1 \(String(repeating: "ab", count: 16)) secret\n")
            let hello = try peer.readLine()
            #expect(hello.hasPrefix("TCPCHAT-PEER/3 HELLO ") && hello.hasSuffix(" secret"), "A answered HELLO with \"\(hello)\"")
            #expect(!hello.contains(secret), "the secret crossed the wire")
            // The acceptor proves nothing before the dialer has (docs/cluster-protocol.md §3).
            let early = try peer.readAvailable(timeout: .milliseconds(300))
            #expect(early.isEmpty, "A sent \(describe(early)) before the dialer proved the secret")
            // Anything before a valid proof is refused; then a wrong proof.
            try peer.send("HB 0123456789abcdef 1 127.0.0.1:1 1 -\n")
            let rest = String(decoding: try peer.expectClosed(), as: UTF8.self)
            #expect(rest.contains("ERROR"), "A closed without an ERROR line: \(rest)")
            #expect(!rest.contains(secret) && !rest.contains("AUTH"))

            let liar = try LineClient.connect(port: a.port, label: "liar")
            try liar.send("TCPCHAT-PEER/3 HELLO 0123456789abcde0 127.0.0.1:1 \(String(repeating: "cd", count: 16)) secret\n")
            _ = try liar.readLines(1)
            try liar.send("AUTH \(String(repeating: "0", count: 64))\n")
            let after = String(decoding: try liar.expectClosed(), as: UTF8.self)
            #expect(after.contains("ERROR"), "A closed the liar without an ERROR line: \(after)")
            #expect(a.logCount("peer link up") == 0, "A brought up a link without a valid proof\n\(a.stderrTail())")
            // A still serves clients.
            let alice = try join("alice", "room", on: a)
            try alice.send("unharmed\n")
            try expectNextLine(alice, "alice - unharmed")
        }
    }

    // MARK: Garbage from a peer

    /// What a bad peer sends after an acceptable HELLO.
    static let garbageAfterHello: [(String, [UInt8])] = [
        ("plain garbage lines", Array("this is not a peer message\nneither is this\n\n   \n".utf8)),
        ("unknown verb", Array("FROB 0123456789abcdef 1 x\n".utf8)),
        ("MSG with a bad seq", Array("MSG 0123456789abcdef notanumber room user text\n".utf8)),
        ("HB with too few fields", Array("HB 0123456789abcdef\n".utf8)),
        ("CLAIM with a bad name", Array("CLAIM 0123456789abcdef 1 bad_name! 5\n".utf8)),
        ("MSG with an ESC in the text", Array("MSG 0123456789abcdef 1 room user te\u{1B}[2Jxt\n".utf8)),
        ("invalid UTF-8", [0xFF, 0xFE, 0x80, 0x0A]),
        ("a NUL byte", Array("STATE 0123456789abcdef 1 ro\u{0}om -\n".utf8)),
    ]

    @Test func aPeerSendingGarbageIsDroppedAndTheNodeServesOn() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let alice = try join("alice", "room", on: a)
            for (i, (what, garbage)) in Self.garbageAfterHello.enumerated() {
                let id = i == 0 ? "0123456789abcdef" : String(format: "0123456789abcd%02x", i)
                let peer = try LineClient.connect(port: a.port, label: "garbage peer (\(what))")
                let before = a.logCount("protocol error")
                try peer.send("TCPCHAT-PEER/3 HELLO \(id) 127.0.0.1:1 nonce open\n")
                let reply = try peer.readLine()
                #expect(reply.hasPrefix("TCPCHAT-PEER/3 HELLO "), "\(what): A answered the HELLO with \"\(reply)\"")
                // Replace the template id with this connection's, then send the garbage.
                let patched = bytesReplacing(Array("0123456789abcdef".utf8), with: Array(id.utf8), in: garbage)
                do { try peer.send(bytes: patched) } catch { /* A may close before the last byte */ }
                let rest = String(decoding: try peer.expectClosed(timeout: .seconds(5)), as: UTF8.self)
                #expect(rest.contains("ERROR"), "\(what): A closed without an ERROR line, got \(rest.debugDescription)")
                _ = try retry(for: .seconds(3), "\(what): A to log `protocol error`") {
                    a.logCount("protocol error") > before ? true : nil
                }
            }
            // Garbage during the handshake, and a version A does not speak.
            for (i, first) in ["TCPCHAT-PEER/3 WHAT IS THIS\n", "TCPCHAT-PEER/9 HELLO 0123456789abcd99 127.0.0.1:1 nonce open\n",
                               "TCPCHAT-PEER/3 HELLO nothex 127.0.0.1:1 nonce open\n"].enumerated() {
                let peer = try LineClient.connect(port: a.port, label: "bad handshake #\(i)")
                let before = a.logCount("protocol error") + a.logCount("peer link refused")
                try peer.send(first)
                let rest = String(decoding: try peer.expectClosed(timeout: .seconds(5)), as: UTF8.self)
                #expect(rest.contains("ERROR"), "\(first.debugDescription): A closed without an ERROR line, got \(rest.debugDescription)")
                _ = try retry(for: .seconds(3), "\(first.debugDescription): A to log the refusal") {
                    a.logCount("protocol error") + a.logCount("peer link refused") > before ? true : nil
                }
            }
            #expect(a.isRunning)
            // Clients were never disturbed: alice chats, a newcomer logs in.
            let bob = try join("bob", "room", on: a)
            try expectSaid("alice", on: alice, "still serving", reaches: [bob])
            // And a real node can still join.
            let b = try nodes.start("B", ["--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([b, a])
            let carol = try join("carol", "room", on: b)
            try carol.send("hello A\n")
            try expectNextLine(alice, "carol - hello A")
        }
    }

    /// A peer that floods well-formed CLAIMs and never reads A's REPLYs: A's queue to it
    /// passes `--peer-queue-bytes`, A drops the link with a log line, and A's clients never
    /// notice.
    @Test func aPeerFloodingClaimsWithoutReadingIsDroppedAndClientsAreServed() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--peer-queue-bytes", "65536"])
            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: a)
            let peer = try LineClient.connect(port: a.port, label: "flooding peer")
            try peer.send("TCPCHAT-PEER/3 HELLO 0123456789abcdef 127.0.0.1:1 nonce open\n")
            _ = try peer.readLine()
            // Each CLAIM costs A a REPLY of ~100 bytes: 200,000 of them are far more than the
            // kernel buffers of both sockets hold.
            let pad = String(repeating: "n", count: 24)
            var flood: [UInt8] = []
            flood.reserveCapacity(200_000 * 80)
            for i in 1...200_000 { flood += Array("CLAIM 0123456789abcdef \(i) \(pad)\(i) \(1000 + i)\n".utf8) }
            let before = a.logCount("slow consumer")
            do { try peer.send(bytes: flood, timeout: .seconds(60)) } catch { /* A dropped the link mid-flood */ }
            _ = try retry(for: .seconds(30), "A to drop the flooding peer with a log line") {
                a.logCount("slow consumer") > before ? true : nil
            }
            #expect(a.isRunning)
            try expectSaid("alice", on: alice, "still serving", reaches: [bob])
            let carol = try join("carol", "room", on: a)
            try bob.send("welcome\n")
            try expectNextLine(carol, "bob - welcome")
        }
    }

    @Test func aPeerLineOverTheSizeLimitIsDropped() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let peer = try LineClient.connect(port: a.port, label: "endless peer")
            try peer.send("TCPCHAT-PEER/3 HELLO 0123456789abcdef 127.0.0.1:1 nonce open\n")
            _ = try peer.readLine()
            // More than the 16 MiB a line may have, never a newline.
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
            var sent = 0
            do {
                while sent < 17 << 20 {
                    try peer.send(bytes: chunk, timeout: .seconds(5))
                    sent += chunk.count
                }
            } catch { /* A closed the link mid-flood */ }
            try peer.expectClosed(timeout: .seconds(10))
            #expect(a.isRunning)
            let alice = try join("alice", "room", on: a)
            try alice.send("fine\n")
            try expectNextLine(alice, "alice - fine")
        }
    }
}

/// Every occurrence of `pattern` in `bytes` replaced with `replacement`.
func bytesReplacing(_ pattern: [UInt8], with replacement: [UInt8], in bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        if i + pattern.count <= bytes.count, Array(bytes[i..<(i + pattern.count)]) == pattern {
            out += replacement
            i += pattern.count
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}

/// B dials A; the link must be refused (logged by A or B), never come up, and the two nodes
/// must not share names.
func expectRefusedLink(_ a: ClusterNode, _ b: ClusterNode) throws {
    _ = try retry(for: .seconds(5), "A or B to log `peer link refused`") {
        a.logCount("peer link refused") + b.logCount("peer link refused") > 0 ? true : nil
    }
    // No link: the same name is granted on both.
    let alice = try join("alice", "room", on: a)
    let aliceOnB = try join("alice", "room", on: b)
    alice.close()
    aliceOnB.close()
    for n in [a, b] {
        #expect(n.logCount("peer link up") == 0, "\(n.name) brought up a link that should have been refused\n\(n.stderrTail())")
    }
}
