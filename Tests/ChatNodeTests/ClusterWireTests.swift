/// docs/cluster-protocol.md from the outside: a test that speaks the inter-node protocol
/// itself joins a node as a peer, as another implementation would (docs/cluster-protocol.md), and
/// checks room-interest routing (docs/cluster-protocol.md §8.6). Also: two nodes dialing each other at
/// once end with one link (docs/cluster-protocol.md §3).
import ChatCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

extension ClusterTests {
    @Test func aPeerSpeakingTheDocumentedProtocolGetsOnlyItsRoomsTraffic() throws {
        try withCluster { nodes in
            let a = try nodes.start("A", ["--heartbeat-ms", "300"])
            let alice = try join("alice", "busy", on: a)
            let bob = try join("bob", "busy", on: a)
            guard let aID = a.nodeID else { throw E2EError("A logged no node id") }

            let fID = "f0f0f0f0f0f0f0f0"
            let f = try FakePeer(port: a.port, id: fID)
            var seq: UInt64 = 0
            func next() -> UInt64 { seq += 1; return seq }

            // A's opening: HELLO, then HB and STATE naming its rooms and granted names.
            let state = try f.readUntil { $0.hasPrefix("STATE \(aID) ") }
            let stateFields = state.split(separator: " ")
            #expect(stateFields.count == 5, "STATE has \(stateFields.count) fields: \(state)")
            if stateFields.count == 5 {
                #expect(stateFields[3].split(separator: ",").contains("busy"), "A's STATE does not list room busy: \(state)")
                let names = stateFields[4].split(separator: ",").map { $0.split(separator: ":").first.map(String.init) ?? "" }
                #expect(Set(names).isSuperset(of: ["alice", "bob"]), "A's STATE does not list alice and bob: \(state)")
            }
            try f.send("HB \(fID) \(next()) 127.0.0.1:1 1 \(aID)")
            try f.send("STATE \(fID) \(next()) - -")
            try f.sync(&seq, aID)

            // F has no member in `busy` and leads nowhere else: A sends it none of busy's traffic.
            try alice.send("one\n")
            try expectNextLine(bob, "alice - one")
            try expectNextLine(alice, "alice - one")
            let before = try f.linesUntilNextHeartbeat(from: aID)
            #expect(!before.contains { $0.hasPrefix("MSG ") }, "F, with no member in busy, got \(before.filter { $0.hasPrefix("MSG ") })")

            // F joins the room: now it gets busy's messages, in the documented form.
            try f.send("ROOM \(fID) \(next()) + busy")
            try f.sync(&seq, aID)
            try bob.send("two\n")
            try expectNextLine(alice, "bob - two")
            try expectNextLine(bob, "bob - two")
            let msg = try f.readUntil { $0.hasPrefix("MSG ") }
            let m = msg.split(separator: " ", maxSplits: 5)
            #expect(m.count == 6 && m[1] == aID && UInt64(m[2]) != nil && m[3] == "busy" && m[4] == "bob" && m[5] == "two",
                    "F got \"\(msg)\", expected `MSG \(aID) <seq> busy bob two`")

            // What F says in the room reaches A's members.
            try f.send("MSG \(fID) 1 busy fred hello from F")
            try expectNextLine(alice, "fred - hello from F")
            try expectNextLine(bob, "fred - hello from F")
            // A copy with a seq that is not newer is dropped (de-duplication).
            try f.send("MSG \(fID) 1 busy fred hello from F")
            try f.send("MSG \(fID) 2 busy fred second")
            try expectNextLine(alice, "fred - second")
            try expectNextLine(bob, "fred - second")

            // F leaves the room: busy's traffic stops again.
            try f.send("ROOM \(fID) \(next()) - busy")
            try f.sync(&seq, aID)
            try alice.send("three\n")
            try expectNextLine(bob, "alice - three")
            let after = try f.linesUntilNextHeartbeat(from: aID)
            #expect(!after.contains { $0.hasPrefix("MSG ") }, "F left busy but got \(after.filter { $0.hasPrefix("MSG ") })")

            // Everything A sent is in the documented protocol (docs/cluster-protocol.md: another
            // implementation joins from the doc alone, and rejects what it does not know).
            let documented = try documentedVerbs()
            #expect(documented.isSuperset(of: ["HELLO", "AUTH", "ERROR", "HB", "STATE", "ROOM", "CLAIM", "REPLY", "RELEASE", "BYE", "MSG"]),
                    "docs/cluster-protocol.md lists only \(documented.sorted())")
            let verbs = f.received.map { l in l.hasPrefix("TCPCHAT-PEER/3 ") ? "HELLO" : String(l.prefix { $0 != " " }) }
            let undocumented = Set(verbs).subtracting(documented)
            #expect(undocumented.isEmpty, "A sent verbs docs/cluster-protocol.md does not define: \(undocumented.sorted()), e.g. \(f.received.filter { l in undocumented.contains { l.hasPrefix($0 + " ") } }.prefix(2))")

            // F says BYE: A forgets it at once, and A's own logins no longer wait for it.
            try f.send("BYE \(fID) \(next())")
            let carol = try join("carol", "busy", on: a)
            try carol.send("after bye\n")
            try expectNextLine(carol, "carol - after bye")
        }
    }

    @Test func twoNodesDialingEachOtherEndWithOneLink() throws {
        try withCluster { nodes in
            var pair: [ClusterNode] = []
            var lastError: Error?
            for _ in 0..<3 where pair.isEmpty {
                let p = try pickFreePorts(2)
                do {
                    let a = try nodes.start("A", port: p[0], ["--peer", "127.0.0.1:\(p[1])"])
                    let b = try nodes.start("B", port: p[1], ["--peer", "127.0.0.1:\(p[0])"])
                    pair = [a, b]
                } catch { lastError = error; nodes.stopAll(expectCleanExit: false) }
            }
            guard pair.count == 2 else { throw E2EError("could not start A and B: \(lastError.map { "\($0)" } ?? "?")") }
            let (a, b) = (pair[0], pair[1])
            try awaitMesh([a, b])
            // One TCP connection between them, whichever side dialed it.
            _ = try retry(for: .seconds(5), "A and B to keep exactly one connection between them") {
                establishedDialerConnections(to: [a.port, b.port]) == 1 ? true : nil
            }
            try awaitSharedNames([a, b])
            try awaitSharedNames([b, a])
            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: b)
            try expectExactlyOnce([alice, bob], perSender: 20)
            #expect(establishedDialerConnections(to: [a.port, b.port], excluding: [alice.localPort, bob.localPort]) == 1)
        }
    }
}

/// How many established TCP connections on this machine go from some other port to one of
/// `ports` while not starting at one of them: the dialing ends of links between those nodes.
/// Client connections are told apart by their local ports (`excluding`).
func establishedDialerConnections(to ports: [Int], excluding clientPorts: [Int] = []) -> Int {
    var count = 0
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readWholeFile(file) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 3, Int(f[3], radix: 16) == TCPTable.established,
                  let local = f[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                  let remote = f[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }) else { continue }
            if ports.contains(remote) && !ports.contains(local) && !clientPorts.contains(local) { count += 1 }
        }
    }
    return count
}

/// A peer played by the test, in open mode (no secret).
final class FakePeer {
    let client: LineClient
    let id: String
    /// Every line received, in order.
    private(set) var received: [String] = []

    init(port: Int, id: String) throws {
        self.id = id
        client = try LineClient.connect(port: port, label: "fake peer \(id)")
        // The version this build speaks: a test of an attack performs it against whatever
        // protocol the node under test speaks.
        try send("\(PeerMessage.helloPrefix) HELLO \(id) 127.0.0.1:1 \(String(repeating: "5a", count: 16)) open")
        let hello = try readLine()
        guard hello.hasPrefix("\(PeerMessage.helloPrefix) HELLO "), hello.hasSuffix(" open") else {
            throw E2EError("the node answered HELLO with \"\(hello)\"")
        }
    }

    func send(_ line: String) throws { try client.send(line + "\n") }

    func readLine(timeout: Duration = .seconds(5)) throws -> String {
        let l = try client.readLine(timeout: timeout)
        received.append(l)
        if l.hasPrefix("ERROR ") { throw E2EError("the node refused the fake peer: \(l)\nlines so far: \(received.suffix(10))") }
        return l
    }

    /// Reads until a line satisfies `match` (bounded); returns it.
    func readUntil(timeout: Duration = .seconds(5), _ match: (String) -> Bool) throws -> String {
        let deadline = Deadline(timeout)
        while true {
            let l = try readLine(timeout: max(.milliseconds(1), deadline.end - .now))
            if match(l) { return l }
        }
    }

    /// The lines up to and including the next heartbeat from `node`: everything the node
    /// queued for this peer before that heartbeat.
    func linesUntilNextHeartbeat(from node: String) throws -> [String] {
        var lines: [String] = []
        _ = try readUntil { l in lines.append(l); return l.hasPrefix("HB \(node) ") }
        return lines
    }

    /// A round trip through the node: a claim on a fresh name, answered by a REPLY. Since
    /// the link is FIFO, the node has handled everything this peer sent before.
    func sync(_ seq: inout UInt64, _ node: String) throws {
        seq += 1
        let name = "sync\(seq)"
        let ts = UInt64(Date().timeIntervalSince1970 * 1000) << 16
        try send("CLAIM \(id) \(seq) \(name) \(ts)")
        let reply = try readUntil { $0.hasPrefix("REPLY \(node) ") && $0.contains(" \(id) \(name) ") }
        guard reply.hasSuffix(" yes") else { throw E2EError("the node answered a fresh claim with \"\(reply)\"") }
        seq += 1
        try send("RELEASE \(id) \(seq) \(name) \(ts)")
    }
}

/// The message verbs docs/cluster-protocol.md defines: the first word of each line of its
/// code blocks that is written in capitals (`HB      <origin> ...`, `AUTH <proof>`), and HELLO.
func documentedVerbs(file: String = #filePath) throws -> Set<String> {
    let root = URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let doc = root.appendingPathComponent("docs/cluster-protocol.md").path
    guard let text = readWholeFile(doc) else { throw E2EError("cannot read \(doc)") }
    var verbs: Set<String> = []
    var inCode = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("```") { inCode.toggle(); continue }
        guard inCode else { continue }
        var words = line.split(separator: " ")
        if words.first?.hasPrefix("TCPCHAT-PEER/") == true { words.removeFirst() }
        if let first = words.first, first.count >= 2, first.allSatisfy({ $0.isUppercase }) { verbs.insert(String(first)) }
        for w in line.split(separator: " ") where w == "AUTH" { verbs.insert("AUTH") }
    }
    return verbs
}
