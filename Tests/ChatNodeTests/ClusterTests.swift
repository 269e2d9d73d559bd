/// docs/cluster-protocol.md: nodes joined with `--peer` form one cluster — rooms and username uniqueness
/// span it. Real nodes on loopback; the cluster tests run one at a time (they measure
/// latencies and start many processes on a small machine).
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite("Cluster", .serialized)
struct ClusterTests {
    // MARK: Two nodes

    @Test func twoNodesShareRoomsAndUsernames() throws {
        try withCluster { nodes in
            let a = try nodes.start("A")
            let b = try nodes.start("B", ["--peer", a.address])
            try awaitMesh([a, b])

            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: b)
            let carol = try join("carol", "other", on: b)
            let dave = try join("dave", "other", on: a)

            try expectSaid("alice", on: alice, "hello from A", reaches: [bob])
            try expectSaid("bob", on: bob, "hello from B", reaches: [alice])

            // Room `other` got none of it: had either message reached carol (on B) or dave
            // (on A), it would sit in their streams ahead of these markers' echoes.
            try expectSaid("carol", on: carol, "other room on B", reaches: [dave])
            try expectSaid("dave", on: dave, "other room on A", reaches: [carol])
            try expectNoLines(alice, "nothing was said in `room` since")
            try expectNoLines(bob, "nothing was said in `room` since")

            // alice on A makes ALICE on B a 403 (names compare case-insensitively).
            try expectRefused("ALICE", "room", on: b, "alice is logged in on A")
            try expectRefused("alice", "elsewhere", on: b, "alice is logged in on A")

            // The name is free cluster-wide within a second of the session's end (asserted
            // ≤ 2 s for a noisy machine).
            alice.close()
            let (again, after) = try loginWhenFree("alice", "room", on: b, within: .seconds(2),
                                                    "after alice left A")
            print("cluster: a name freed on A was granted on B after \(Int(after.milliseconds)) ms")
            #expect(after <= .seconds(2), "alice on B got 200 only after \(after)")
            // The new alice (on B) is in `room` with bob.
            try expectSaid("alice", on: again, "back", reaches: [bob])
            try expectRefused("alice", "room", on: a, "alice is logged in on B now")
        }
    }

    // MARK: Shapes

    @Test func chainForwardsAcrossTheMiddleNode() throws {
        // A — B — C with nothing else: A and C advertise addresses where nobody listens, so
        // neither can dial the other through gossip, and B must forward everything.
        try withCluster { nodes in
            let dead = try pickFreePorts(2)
            let a = try nodes.start("A", ["--advertise", "127.0.0.1:\(dead[0])"])
            let b = try nodes.start("B", ["--peer", a.address])
            let c = try nodes.start("C", ["--peer", b.address, "--advertise", "127.0.0.1:\(dead[1])"])
            try awaitLinks([a: [b], b: [a, c], c: [b]])
            try awaitSharedNames([a, c])
            try awaitSharedNames([c, a])

            let alice = try join("alice", "room", on: a)
            let carol = try join("carol", "room", on: c)
            let bystander = try join("bystander", "lobby", on: b)
            try expectSaid("alice", on: alice, "from A to C", reaches: [carol])
            try expectSaid("carol", on: carol, "from C to A", reaches: [alice])
            try expectRefused("Carol", "x", on: a, "carol is logged in on C, two hops away")
            try expectRefused("alice", "x", on: c, "alice is logged in on A, two hops away")
            // B relayed `room`'s traffic without delivering it to its own member of `lobby`.
            try bystander.send("still here\n")
            try expectNextLine(bystander, "bystander - still here")
            #expect(!a.linkedPeers.contains(c.nodeID ?? "?") && !c.linkedPeers.contains(a.nodeID ?? "?"),
                    "test setup: A and C linked directly, so this was not a chain")
        }
    }

    @Test func threeNodeRingDeliversExactlyOnce() throws {
        // Each node --peer's the next: A → C, B → A, C → B. Every port is picked before
        // any node starts.
        try withCluster { nodes in
            let ring = try startRing(nodes, names: ["A", "B", "C"])
            try awaitMesh(ring)
            try awaitSharedNames(ring)
            let members = try ring.enumerated().map { try join("m\($0.offset)", "ring", on: $0.element) }
            try expectExactlyOnce(members, perSender: 20)

            // Fresh names are granted on every node of the ring (how long a login takes is
            // measured by scripts/login-latency.py, not here).
            for i in 0..<30 {
                let node = ring[i % 3]
                let (reply, c) = try login("lat\(i)", "lat", on: node)
                c.close()
                #expect(reply == "200", "fresh name lat\(i) on \(node.name)")
            }
        }
    }

    @Test func fourNodeRingWithoutChordsDeliversExactlyOnce() throws {
        // A true cycle A — B — C — D — A: every node advertises an address where nobody
        // listens, so only the --peer links exist and each message reaches the far node
        // by two paths; the copy must die there.
        try withCluster { nodes in
            let ring = try startRing(nodes, names: ["A", "B", "C", "D"], unreachableAdvertise: true)
            let (a, b, c, d) = (ring[0], ring[1], ring[2], ring[3])
            try awaitLinks([a: [b, d], b: [a, c], c: [b, d], d: [c, a]])
            try awaitSharedNames(ring)
            try awaitSharedNames([c, a, b, d])
            let members = try ring.enumerated().map { try join("r\($0.offset)", "cycle", on: $0.element) }
            try expectExactlyOnce(members, perSender: 30)
            #expect(a.linkedPeers.count == 2 && c.linkedPeers.count == 2, "test setup: the ring grew chords")
        }
    }

    // MARK: Races

    @Test(arguments: [2, 3])
    func racingLoginsGiveExactlyOne200(nodeCount: Int) throws {
        try withCluster { nodes in
            var all: [ClusterNode] = [try nodes.start("N0")]
            for i in 1..<nodeCount { all.append(try nodes.start("N\(i)", ["--peer", all[0].address])) }
            try awaitMesh(all)
            try awaitSharedNames(all)

            let rounds = nodeCount == 2 ? 50 : 30
            var outcomes: [String: Int] = [:]
            for round in 0..<rounds {
                let name = "race\(round)x\(nodeCount)"
                // Connect all first, then send every handshake back to back before reading.
                let order = (0..<nodeCount).map { (round + $0) % nodeCount }
                let clients = try order.map { i in
                    try LineClient.connect(port: all[i].port, label: "\(name)@\(all[i].name)")
                }
                for c in clients { try c.send("\(name)_race\n") }
                let replies = try clients.map { try $0.readLine() }
                let granted = replies.filter { $0 == "200" }.count
                let refused = replies.filter { $0 == "403" }.count
                outcomes["\(granted)×200 \(refused)×403", default: 0] += 1
                #expect(granted == 1 && refused == nodeCount - 1,
                        "round \(round): \(name) sent on \(order.map { all[$0].name }) got \(replies)")
                // The winner's session is real: it chats; the losers were closed.
                for (c, r) in zip(clients, replies) {
                    if r == "200" {
                        try c.send("won\n")
                        try expectNextLine(c, "\(name) - won")
                    } else {
                        try c.expectClosed()
                    }
                    c.close()
                }
            }
            #expect(outcomes == ["1×200 \(nodeCount - 1)×403": rounds], "outcomes over \(rounds) rounds: \(outcomes)")
        }
    }
}

// MARK: Helpers for these tests

/// Starts nodes in a ring on pre-picked ports: node i has `--peer` to node i-1 (node 0 to the
/// last). Retries with new ports if one was taken in the meantime.
func startRing(_ nodes: ClusterNodes, names: [String], unreachableAdvertise: Bool = false,
               extra: [String] = []) throws -> [ClusterNode] {
    var lastError: Error?
    for _ in 0..<3 {
        let ports = try pickFreePorts(names.count * (unreachableAdvertise ? 2 : 1))
        var started: [ClusterNode] = []
        do {
            for (i, name) in names.enumerated() {
                let prev = ports[(i + names.count - 1) % names.count]
                var flags = ["--peer", "127.0.0.1:\(prev)"] + extra
                if unreachableAdvertise { flags += ["--advertise", "127.0.0.1:\(ports[names.count + i])"] }
                started.append(try nodes.start(name, port: ports[i], flags))
            }
            return started
        } catch {
            lastError = error
            for n in started { n.kill9() }
        }
    }
    throw E2EError("could not start the ring: \(lastError.map { "\($0)" } ?? "?")")
}

/// Waits until each node's links are exactly the given neighbors.
func awaitLinks(_ want: [ClusterNode: [ClusterNode]], timeout: Duration = .seconds(10)) throws {
    try retry(for: timeout, every: .milliseconds(20), "links as expected") { () -> Void? in
        var wrong: [String] = []
        for (node, neighbors) in want.sorted(by: { $0.key.name < $1.key.name }) {
            let ids = neighbors.map { $0.nodeID }
            let have = node.linkedPeers
            if node.nodeID == nil || ids.contains(where: { $0 == nil }) || have != Set(ids.compactMap { $0 }) {
                let names = have.map { id in want.keys.first { $0.nodeID == id }?.name ?? id }
                wrong.append("\(node.name) links to \(names.sorted()), expected \(neighbors.map(\.name).sorted())")
            }
        }
        guard wrong.isEmpty else { throw E2EError(wrong.joined(separator: "; ")) }
        return ()
    }
}

extension ClusterNode: Hashable {
    static func == (l: ClusterNode, r: ClusterNode) -> Bool { l === r }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }
}

/// Every member sends `perSender` numbered messages (`<label>:<i>`); every member must get
/// every message exactly once, each sender's in order; then a final marker from the first
/// member must be the very next line everywhere (no late copies queued ahead of it).
func expectExactlyOnce(_ members: [LineClient], perSender: Int, timeout: Duration = .seconds(10)) throws {
    let users = members.map { String($0.label.prefix { $0 != "@" }) }
    for (m, user) in zip(members, users) {
        try m.send((1...perSender).map { "\(user):\($0)\n" }.joined())
    }
    let total = members.count * perSender
    let deadline = Deadline(timeout)
    for m in members {
        let lines = try m.readLines(total, timeout: max(.milliseconds(1), deadline.end - .now))
        try checkDelivery(lines, at: m.label, senders: users, perSender: perSender)
    }
    try members[0].send("end of test\n")
    for m in members {
        let next = try m.readLine()
        guard next == "\(users[0]) - end of test" else {
            throw E2EError("\(m.label): after all \(total) messages the next line is \"\(next)\", expected the end marker (a duplicate?)")
        }
    }
}

/// `lines` must hold, for each sender, `<sender> - <sender>:1` … `:perSender` exactly once and
/// in that order, and nothing else.
func checkDelivery(_ lines: [String], at receiver: String, senders: [String], perSender: Int) throws {
    var seen: [String: [Int]] = [:]
    var strange: [String] = []
    for line in lines {
        guard let sep = line.range(of: " - ") else { strange.append(line); continue }
        let sender = String(line[..<sep.lowerBound])
        let text = line[sep.upperBound...]
        guard text.hasPrefix("\(sender):"), let n = Int(text.dropFirst(sender.count + 1)) else { strange.append(line); continue }
        seen[sender, default: []].append(n)
    }
    var problems: [String] = []
    if !strange.isEmpty { problems.append("unexpected lines \(strange.prefix(5))") }
    for s in senders {
        let got = seen[s] ?? []
        if got != Array(1...perSender) {
            let dups = Dictionary(grouping: got, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
            let missing = Set(1...perSender).subtracting(got).sorted()
            let inOrder = zip(got, got.dropFirst()).allSatisfy { $0 < $1 }
            problems.append("from \(s): \(got.count) of \(perSender), missing \(missing.prefix(10)), duplicated \(dups.prefix(10)), \(inOrder ? "in order" : "OUT OF ORDER: \(got.prefix(20))")")
        }
        seen[s] = nil
    }
    if !seen.isEmpty { problems.append("from unknown senders \(seen.keys.sorted())") }
    if !problems.isEmpty {
        throw E2EError("\(receiver) received \(lines.count) lines: \(problems.joined(separator: "; "))")
    }
}
