/// The attacks of issue 10, each performed against real nodes on loopback (docs/security.md
/// lists them with what each must not achieve). Every test speaks the peer protocol version
/// of the build under test (`PeerMessage.helloPrefix`), so it performs the same attack on
/// older code, where it succeeded.
import ChatCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite("Attacks", .serialized)
struct AttackTests {
    static let prefix = PeerMessage.helloPrefix

    // MARK: 1. Relaying a proof

    /// Connect to A claiming B's id, get A's nonce; connect to B claiming A's id with A's
    /// nonce; if B signs anything, hand it to A. A must never open the link, send its HB or
    /// STATE, or relay chat from it.
    @Test func aProofCannotBeRelayedIntoASecretCluster() throws {
        let secret = try ClusterTempFile(randomSecret() + "\n", name: "relay")
        try withCluster { nodes in
            let a = try nodes.start("A", ["--cluster-secret-file", secret.path])
            let b = try nodes.start("B", ["--cluster-secret-file", secret.path, "--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([a, b])
            guard let aID = a.nodeID, let bID = b.nodeID else { throw E2EError("no node ids logged") }
            let alice = try join("alice", "r", on: a)
            let bob = try join("bob", "r", on: b)

            let toA = try LineClient.connect(port: a.port, label: "attacker to A")
            try toA.send("\(Self.prefix) HELLO \(bID) 127.0.0.1:1 attackerNonce0001 secret\n")
            let helloA = try toA.readLine()
            let fields = helloA.split(separator: " ")
            guard fields.count == 6, fields[1] == "HELLO" else { throw E2EError("A answered \(helloA)") }
            let nonceA = String(fields[4])

            let toB = try LineClient.connect(port: b.port, label: "attacker to B")
            try toB.send("\(Self.prefix) HELLO \(aID) 127.0.0.1:1 \(nonceA) secret\n")
            _ = try toB.readLine()   // B's HELLO
            // Whatever B says next within a moment: on the old protocol, its AUTH.
            let fromB = String(decoding: try toB.readAvailable(timeout: .milliseconds(500)), as: UTF8.self)
            let relayed = fromB.split(separator: "\n").first { $0.hasPrefix("AUTH ") }.map { String($0.dropFirst(5)) }
            #expect(relayed == nil, "B signed a proof for a stranger: \(fromB)")
            try toA.send("AUTH \(relayed ?? String(repeating: "0", count: 64))\n")
            try toA.send("MSG \(bID) 1 r alice hello-from-an-outsider\n")
            let got = String(decoding: try toA.expectClosed(timeout: .seconds(5)), as: UTF8.self)
            #expect(!got.contains("HB ") && !got.contains("STATE "), "A sent its state to the attacker: \(got.prefix(300))")
            #expect(got.contains("ERROR"), "A closed without an ERROR: \(got.prefix(300))")
            // A member's next line is a member's message, not the injected one.
            try bob.send("marker\n")
            try expectNextLine(alice, "bob - marker")
            #expect(a.linkedPeers == [bID], "A's links: \(a.linkedPeers)\n\(a.stderrTail())")
            #expect(a.logCount("peer link replaced") == 0)
        }
    }

    // MARK: 2. Memory before authentication

    /// 16 connections open a peer handshake in secret mode and then send megabytes without
    /// a newline, or drip one byte at a time: each is cut off at a few KiB or at the
    /// handshake deadline, and the node's memory stays flat.
    @Test func unauthenticatedPeerHandshakesCostNoMoreThanAClientHandshake() throws {
        let secret = try ClusterTempFile(randomSecret() + "\n", name: "preauth")
        try withCluster { nodes in
            let a = try nodes.start("A", ["--cluster-secret-file", secret.path, "--handshake-timeout", "2"])
            let baseline = try rssKiB(a.pid)
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
            var flooders: [LineClient] = []
            for i in 0..<16 {
                let c = try LineClient.connect(port: a.port, label: "flooder \(i)")
                try c.send(String(format: "\(Self.prefix) HELLO 00000000000000%02x 127.0.0.1:1 nonce%04d secret\n", i, i))
                flooders.append(c)
            }
            for c in flooders {
                for _ in 0..<8 { do { try c.send(bytes: chunk, timeout: .seconds(2)) } catch { break } }
            }
            let grown = try rssKiB(a.pid) - baseline
            #expect(grown < 32 * 1024, "16 unauthenticated peer handshakes grew A by \(grown / 1024) MiB")
            for c in flooders { _ = try c.expectClosed(timeout: .seconds(5)) }

            // Dripping a byte every 100 ms keeps a connection from being silent, not alive:
            // the handshake deadline (2 s) closes it.
            var drippers: [LineClient] = []
            for i in 0..<16 {
                let c = try LineClient.connect(port: a.port, label: "dripper \(i)")
                try c.send(String(format: "\(Self.prefix) HELLO 00000000000001%02x 127.0.0.1:1 nonce%04d secret\n", i, i))
                drippers.append(c)
            }
            let deadline = Deadline(.seconds(8))
            var open = drippers
            while !open.isEmpty && !deadline.expired {
                open = open.filter { c in (try? c.trySend(bytes: [UInt8(ascii: "x")][...])) != nil && !c.isResetOrHungUp }
                Thread.sleep(forTimeInterval: 0.1)   // the drip rate, not a synchronisation
            }
            #expect(open.isEmpty, "\(open.count) dripping handshakes were still open after 8 s")
            #expect(a.logCount("peer handshake timeout") + a.logCount("protocol error") > 0, "no refusal logged\n\(a.stderrTail())")
            let alice = try join("alice", "r", on: a)
            try alice.send("fine\n")
            try expectNextLine(alice, "alice - fine")
        }
    }

    // MARK: 3. Counts that overflow

    @Test func aHugeLoadCountNeitherCrashesNorReachesTheStatusReport() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let f = try FakePeer(port: a.port, id: "f0f0f0f0f0f0f0f1")
            for line in ["LOAD f0f0f0f0f0f0f0f1 1 9223372036854775807 -", "LOAD f0f0f0f0f0f0f0f1 2 1 r:9223372036854775807"] {
                try? f.send(line)
            }
            let g = try FakePeer(port: a.port, id: "f0f0f0f0f0f0f0f2")
            try? g.send("LOAD f0f0f0f0f0f0f0f2 1 9223372036854775807 -")
            for _ in 0..<2 {
                let report = try status(of: a, secretFile: nil)
                let totals = report["totals"] as? [String: Any]
                #expect((totals?["cluster_sessions"] as? Int ?? -1) >= 0)
            }
            #expect(a.isRunning, "A died:\n\(a.stderrTail())")
            let alice = try join("alice", "r", on: a)
            try alice.send("alive\n")
            try expectNextLine(alice, "alice - alive")
        }
    }

    // MARK: 4. One peer against the cluster

    /// A "no" from an origin the claim never waited for does not refuse a login.
    @Test func aForgedReplyDoesNotRefuseALogin() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--heartbeat-ms", "300"])
            let aID = try retry(for: .seconds(5), "A to log its id") { a.nodeID }
            let fID = "f0f0f0f0f0f0f0f3"
            let f = try FakePeer(port: a.port, id: fID)
            var seq: UInt64 = 0
            func next() -> UInt64 { seq += 1; return seq }
            try f.send("HB \(fID) \(next()) 127.0.0.1:1 1 \(aID)")
            try f.sync(&seq, aID)
            let client = try LineClient.connect(port: a.port, label: "alice")
            try client.send("alice_r\n")
            let claim = try f.readUntil { $0.hasPrefix("CLAIM \(aID) ") && $0.contains(" alice ") }
            let ts = claim.split(separator: " ")[4]
            // A stranger's no, then F's own yes.
            try f.send("REPLY 0123456789abcdef 1 \(aID) alice \(ts) no")
            try f.send("REPLY \(fID) \(next()) \(aID) alice \(ts) yes")
            // Keep F's link alive while the login settles (it may wait for the stranger).
            let deadline = Deadline(.seconds(10))
            var reply: String?
            while reply == nil && !deadline.expired {
                try f.send("HB \(fID) \(next()) 127.0.0.1:1 1 \(aID)")
                reply = try? client.readLine(timeout: .milliseconds(250))
            }
            #expect(reply == "200", "the login got \(reply ?? "nothing") after a forged REPLY no")
        }
    }

    /// A member forges a direct REPLY (seq 0) in another node's name on its own link, while
    /// that node cannot answer: seq 0 is only for a REPLY from the link's own node
    /// (docs/cluster-protocol.md §5), so the link is refused, and the forged "no" does not
    /// refuse the login that the real node then grants.
    @Test func aForgedDirectReplyIsRefusedAndDoesNotRefuseALogin() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--peer-timeout-ms", "30000"])
            let b = try nodes.start("B", ["--peer", a.address, "--peer-timeout-ms", "30000"])
            try awaitMesh([a, b])
            guard let aID = a.nodeID, let bID = b.nodeID else { throw E2EError("no ids") }
            let fID = "f0f0f0f0f0f0f0f5"
            let f = try FakePeer(port: a.port, id: fID)
            var seq: UInt64 = 1
            try f.send("HB \(fID) \(seq) 127.0.0.1:1 1 \(aID)")
            try f.sync(&seq, aID)
            // B cannot answer while stopped: the forged answer is the first A sees in its name.
            b.send(signal: SIGSTOP)
            var stopped = true
            defer { if stopped { b.send(signal: SIGCONT) } }
            let alice = try LineClient.connect(port: a.port, label: "alice")
            try alice.send("alice_r\n")
            let claim = try f.readUntil { $0.hasPrefix("CLAIM \(aID) ") && $0.contains(" alice ") }
            let ts = claim.split(separator: " ")[4]
            try f.send("REPLY \(bID) 0 \(aID) alice \(ts) no")
            let last = String(decoding: try f.client.expectClosed(timeout: .seconds(5)), as: UTF8.self)
            #expect(last.contains("ERROR "), "A closed the link without saying why: \(last)")
            b.send(signal: SIGCONT)
            stopped = false
            // B answers yes; F, gone, is dead 3 heartbeats after its link closed.
            #expect(try alice.readLine(timeout: .seconds(15)) == "200", "a forged direct REPLY refused the login")
        }
    }

    /// A BYE for a neighbor, sent by another peer, does not cut the neighbor off.
    @Test func aForgedByeDoesNotExileANeighbor() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let b = try nodes.start("B", ["--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([a, b])
            guard let aID = a.nodeID, let bID = b.nodeID else { throw E2EError("no ids") }
            let alice = try join("alice", "r", on: a)
            let bob = try join("bob", "r", on: b)
            let f = try FakePeer(port: a.port, id: "f0f0f0f0f0f0f0f4")
            var seq: UInt64 = 0
            try f.send("HB f0f0f0f0f0f0f0f4 1 127.0.0.1:1 1 \(aID)")
            seq = 1
            // A forwards B's heartbeats to F: the BYE takes the next number of B's stream,
            // so A handles it at once, as it would B's own.
            let hb = try f.readUntil(timeout: .seconds(5)) { $0.hasPrefix("HB \(bID) ") }
            guard let bSeq = UInt64(hb.split(separator: " ")[2]) else { throw E2EError("unreadable HB: \(hb)") }
            try f.send("BYE \(bID) \(bSeq + 1)")
            try f.sync(&seq, aID)
            _ = try retry(for: .seconds(3), "A to log that it ignored the BYE") {
                a.logCount("ignoring a BYE") > 0 ? true : nil
            }
            try bob.send("still here\n")
            try expectNextLine(alice, "bob - still here")
            // And B's names still count on A.
            try expectRefused("bob", "r", on: a, "bob is held on B")
            // A far-ahead BYE would wait as an early message and, its gap given up after
            // 500 ms, take B's control stream: B's later claims would go unheard on A.
            try f.send("BYE \(bID) \(UInt64(Int64.max) - 10)")
            try f.sync(&seq, aID)
            for i in 0..<3 {
                Thread.sleep(forTimeInterval: 0.4)   // spans the 500 ms hold; pacing, not synchronisation
                try bob.send("after \(i)\n")
                try expectNextLine(alice, "bob - after \(i)")
            }
            let dave = try join("dave", "r", on: b)
            try expectRefused("dave", "r", on: a, "dave is held on B, whose CLAIM A must still hear")
            dave.close()
        }
    }

    /// 5,000 made-up origins, each with its own address: the node tracks a bounded number,
    /// dials a bounded number, keeps a bounded metric label set, sends a few STATEs a
    /// second, and its logins are still answered.
    @Test func fiveThousandFakeOriginsAreBounded() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--metrics", "127.0.0.1:0"])
            let (aID, mport) = try retry(for: .seconds(5), "A to log its id and metrics address") { () -> (String, Int)? in
                guard let id = a.nodeID, let port = metricsPort(of: a) else { return nil }
                return (id, port)
            }
            let fID = "f0f0f0f0f0f0f0f5"
            let f = try FakePeer(port: a.port, id: fID)
            var seq: UInt64 = 0
            try f.sync(&seq, aID)
            var flood = ""
            for i in 0..<5000 {
                flood += String(format: "HB %016x 1 127.0.0.%d:%d 1 -\n", 0x1000_0000 + i, 1 + i % 200, 20000 + i)
            }
            try f.client.send(flood, timeout: .seconds(30))
            try f.sync(&seq, aID)
            // STATEs A sent because of the flood, by the time it answered the sync.
            let states = f.received.filter { $0.hasPrefix("STATE \(aID) ") }.count
            #expect(states <= 20, "5,000 new origins cost \(states) STATE floods")
            let m = try scrape(mport)
            let labels = m.keys.filter { $0.hasPrefix("tcp_chat_peer_link_up{") }.count
            #expect(labels <= Limits.maxClusterNodes + 1, "\(labels) peer_link_up label sets")
            #expect((m["tcp_chat_cluster_nodes"] ?? 0) <= Double(Limits.maxClusterNodes + 1))
            let fds = try openDescriptors(a.pid)
            #expect(fds < Limits.maxClusterNodes + 64, "A holds \(fds) descriptors: more than one per learned address")
            let report = try status(of: a, secretFile: nil)
            let learned = (report["totals"] as? [String: Any])?["learned_addresses"] as? Int
            #expect(learned != nil && learned! <= Limits.maxClusterNodes, "learned addresses: \(String(describing: learned))")
            // A login is answered (the made-up origins answer no claim; they are given up).
            let client = try LineClient.connect(port: a.port, label: "carol")
            try client.send("carol_r\n")
            let deadline = Deadline(.seconds(15))
            var reply: String?
            while reply == nil && !deadline.expired {
                seq += 1
                try f.send("HB \(fID) \(seq) 127.0.0.1:1 1 \(aID)")
                reply = try? client.readLine(timeout: .milliseconds(250))
            }
            #expect(reply == "200", "carol's login got \(reply ?? "nothing") with fake origins around")
        }
    }

    // MARK: 5. A client piling up input behind a waiting login

    @Test func aLoginWaitingOnAStoppedPeerBuffersNoInput() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--peer-timeout-ms", "30000"])
            let b = try nodes.start("B", ["--peer", a.address, "--peer-timeout-ms", "30000"])
            try awaitMesh([a, b])
            b.send(signal: SIGSTOP)
            defer { b.send(signal: SIGCONT) }
            let baseline = try rssKiB(a.pid)
            let eve = try LineClient.connect(port: a.port, label: "eve")
            try eve.send("eve_r\n")
            let chunk = [UInt8](String(repeating: "x\n", count: 1 << 19).utf8)   // 1 MiB of messages
            var sent = 0
            let deadline = Deadline(.seconds(3))
            while !deadline.expired && sent < 512 << 20 {
                guard let n = try? eve.trySend(bytes: chunk[...]) else { break }
                if n == 0 { Thread.sleep(forTimeInterval: 0.01) }   // the socket is full: A stopped reading
                sent += n
            }
            let grown = try rssKiB(a.pid) - baseline
            #expect(grown < 16 * 1024, "A grew by \(grown / 1024) MiB behind a waiting login (\(sent >> 20) MiB sent)")
            #expect(sent < 64 << 20, "A accepted \(sent >> 20) MiB from a client whose login waits")
        }
    }

    // MARK: 6. Escapes for the operator's terminal

    @Test func anAddressWithEscapesNeverReachesTheOperator() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let evil = "\u{1b}]0;PWNED\u{07}\u{1b}[2J:1"
            let c = try LineClient.connect(port: a.port, label: "escaping peer")
            try c.send("\(Self.prefix) HELLO f0f0f0f0f0f0f0f6 \(evil) nonce open\n")
            let answer = String(decoding: try c.expectClosed(timeout: .seconds(5)), as: UTF8.self)
            #expect(answer.contains("ERROR"), "A accepted a HELLO with escapes in its address: \(answer.debugDescription)")
            let f = try FakePeer(port: a.port, id: "f0f0f0f0f0f0f0f7")
            try? f.send("HB f0f0f0f0f0f0f0f7 1 \(evil) 1 -")
            try? f.send("ERROR \(evil) \(String(repeating: "y", count: 1000))")
            let printed = try runTool(["status", "-a", "127.0.0.1", "-p", "\(a.port)"])
            #expect(!printed.out.utf8.contains(0x1B) && !printed.out.utf8.contains(0x07), "status printed escapes: \(printed.out.debugDescription)")
            _ = try retry(for: .seconds(3), "A to log the refusals") { a.logCount("ERROR") + a.logCount("refused") + a.logCount("protocol error") > 0 ? true : nil }
            let log = a.stderr
            #expect(!log.utf8.contains(0x1B) && !log.utf8.contains(0x07), "A logged raw escapes")
            #expect(!log.contains(String(repeating: "y", count: 300)), "A logged a peer's reason uncut")
        }
    }

    // MARK: 7. Slow leaks

    /// Rooms used once and origins seen once leave nothing behind.
    @Test func cyclingRoomsAndOriginsLeavesNoState() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--peer-timeout-ms", "1000", "--heartbeat-ms", "300"])
            let b = try nodes.start("B", ["--peer", a.address, "--peer-timeout-ms", "1000", "--heartbeat-ms", "300"])
            try awaitMesh([a, b])
            try awaitSharedNames([a, b])
            for i in 0..<300 {
                // The last round's x and y leave as their nodes finish closing (after EOF).
                let x = try loginWhenFree("x", "room\(i)", on: a, within: .seconds(5), "x's next room").client
                let y = try loginWhenFree("y", "room\(i)", on: b, within: .seconds(5), "y's next room").client
                try y.send("m\(i)\n")
                try expectNextLine(x, "y - m\(i)")
                try x.send("/exit\n")
                try y.send("/exit\n")
                _ = try x.expectClosed()
                _ = try y.expectClosed()
                x.close()
                y.close()
            }
            guard let aID = a.nodeID else { throw E2EError("no id") }
            let f = try FakePeer(port: a.port, id: "f0f0f0f0f0f0f0f8")
            var seq: UInt64 = 0
            var flood = ""
            for i in 0..<300 { flood += String(format: "MSG %016x 1 room%d u hi\n", 0x2000_0000 + i, i) }
            try f.client.send(flood)
            try f.sync(&seq, aID)
            f.client.close()
            // Origins time out after 1 s; streams idle for 10 peer timeouts (10 s) are forgotten,
            // and a room's numbering after twice that and a STATE period (30 s), at a sweep.
            _ = try retry(for: .seconds(55), every: .milliseconds(500), "A and B to forget the rooms and origins") { () -> Bool? in
                let ta = (try status(of: a, secretFile: nil)["totals"] as? [String: Any]) ?? [:]
                let tb = (try status(of: b, secretFile: nil)["totals"] as? [String: Any]) ?? [:]
                let counts = [ta["cluster_streams"], ta["room_sequences"], tb["cluster_streams"], tb["room_sequences"], ta["cluster_nodes"]]
                    .map { $0 as? Int ?? .max }
                return counts[0] <= 4 && counts[1] == 0 && counts[2] <= 4 && counts[3] == 0 && counts[4] == 2 ? true : nil
            }
        }
    }
}

// MARK: - Helpers for the attacks

/// A fresh random cluster secret of 32 hex digits.
func randomSecret() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 0 ... .max, using: &g)) }.joined()
}

/// Resident memory of a process, from /proc/PID/status.
func rssKiB(_ pid: Int32) throws -> Int {
    guard let text = readWholeFile("/proc/\(pid)/status"),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else {
        throw E2EError("cannot read VmRSS of \(pid)")
    }
    return kib
}

func openDescriptors(_ pid: Int32) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
}

/// The metrics port from the node's `node started` line (`metrics=HOST:PORT`).
func metricsPort(of node: ClusterNode) -> Int? {
    for line in node.stderr.split(separator: "\n") where line.contains("node started") {
        guard let r = line.range(of: "metrics=") else { continue }
        let value = line[r.upperBound...].prefix { $0 != " " }
        return value.split(separator: ":").last.flatMap { Int($0) }
    }
    return nil
}
