import Testing
@testable import ChatCore

/// The cluster contract (docs/cluster-protocol.md §8) on simulated networks: every test is deterministic
/// from its seed; a failing expectation names the seed.
@Suite struct ClusterSimulationTests {

    // MARK: Rooms span the cluster

    @Test func twoNodesMessageReachesSameRoomOnceAndEchoes() {
        let net = SimNetwork(nodes: 2, seed: 1)
        net.linkUp(0, 1)
        net.deliverAll()
        let alice = net.login(0, "Alice", "lobby")
        let bob = net.login(1, "bob", "Lobby")
        let carol = net.login(1, "carol", "other")
        let dave = net.login(0, "dave", "other")
        net.deliverAll()
        for s in [alice, bob, carol, dave] { #expect(s.got200, "\(s.user) not admitted") }

        net.say(alice, "hello there, bob")
        net.deliverAll()
        #expect(alice.chatLines == ["Alice - hello there, bob\n"])
        #expect(bob.chatLines == ["Alice - hello there, bob\n"])
        #expect(carol.chatLines.isEmpty)
        #expect(dave.chatLines.isEmpty)

        net.say(carol, "x")
        net.deliverAll()
        #expect(dave.chatLines == ["carol - x\n"])
        #expect(carol.chatLines == ["carol - x\n"])
        #expect(bob.chatLines == ["Alice - hello there, bob\n"])
        net.expectClean("two nodes")
    }

    @Test func chainDeliversThroughTheMiddleNode() {
        let net = SimNetwork(nodes: 3, seed: 7)
        net.chain()
        net.deliverAll()
        let a = net.login(0, "a", "r")
        let c = net.login(2, "c", "r")
        net.deliverAll()
        #expect(a.got200 && c.got200)
        // The ends learn of each other through B, so a runtime could dial them.
        #expect(net[0].learnedAddresses[net[2].id] == net[2].address)
        #expect(Set(net[0].cluster.liveNodes) == [net[1].id, net[2].id])
        for i in 0..<5 { net.say(a, "from a \(i)"); net.say(c, "from c \(i)") }
        net.deliverAll()
        let fromA = (0..<5).map { "a - from a \($0)\n" }, fromC = (0..<5).map { "c - from c \($0)\n" }
        #expect(c.chatLines.filter { $0.hasPrefix("a - ") } == fromA)
        #expect(a.chatLines.filter { $0.hasPrefix("c - ") } == fromC)
        #expect(a.chatLines.count == 10 && c.chatLines.count == 10)
        // No direct line between A and C exists: all went via B.
        #expect(net.sentLog[.init(from: 0, to: 2)] == nil)
        net.expectClean("chain")
    }

    /// Members spread over rooms and nodes; senders talk while the network delivers in a
    /// seeded random order. Every member must see every message of its room exactly once,
    /// in each sender's order, and nothing from other rooms.
    func roomTraffic(_ net: SimNetwork, membersPerNode: Int, rooms: Int, messages: Int, context: String) {
        net.deliverAll()
        var members: [ClusterSink] = []
        for n in net.nodes.indices {
            for m in 0..<membersPerNode {
                let room = "room\(Int.random(in: 0..<rooms, using: &net.rng))"
                members.append(net.login(n, "u\(n)x\(m)", room))
            }
        }
        net.deliverAll()
        for s in members { #expect(s.got200, "\(context): \(s.user) not admitted") }
        var next = Array(repeating: 0, count: members.count)
        var left = members.count * messages
        while left > 0 || net.inFlight > 0 {
            if left > 0 && (net.inFlight == 0 || Int.random(in: 0..<3, using: &net.rng) == 0) {
                let candidates = members.indices.filter { next[$0] < messages }
                let i = candidates[Int.random(in: candidates.indices, using: &net.rng)]
                net.say(members[i], "m \(next[i]) of \(members[i].user)")
                next[i] += 1
                left -= 1
            } else if !net.step() {
                break
            }
        }
        for s in members {
            let peers = members.filter { $0.room == s.room }
            var expected = 0
            for p in peers {
                let want = (0..<messages).map { "\(p.user) - m \($0) of \(p.user)\n" }
                let got = s.chatLines.filter { $0.hasPrefix("\(p.user) - ") }
                #expect(got == want, "\(context): \(s.user)@\(s.node) from \(p.user)@\(p.node)")
                expected += messages
            }
            #expect(s.chatLines.count == expected, "\(context): \(s.user) got \(s.chatLines.count) lines, expected \(expected)")
        }
        net.expectClean(context)
    }

    @Test(arguments: 0..<25)
    func fullMeshOfFourDeliversExactlyOnceInOrder(seed: Int) {
        let net = SimNetwork(nodes: 4, seed: UInt64(seed))
        net.fullMesh()
        roomTraffic(net, membersPerNode: 2, rooms: 2, messages: 4, context: "mesh4 seed \(seed)")
    }

    @Test(arguments: 0..<25)
    func ringOfFiveDeliversExactlyOnceInOrder(seed: Int) {
        let net = SimNetwork(nodes: 5, seed: UInt64(100 + seed))
        net.ring()
        roomTraffic(net, membersPerNode: 2, rooms: 3, messages: 4, context: "ring5 seed \(seed)")
    }

    @Test(arguments: 0..<25)
    func randomTopologiesDeliverExactlyOnceInOrder(seed: Int) {
        let net = SimNetwork(nodes: 3 + seed % 4, seed: UInt64(200 + seed))
        let shape = net.topology(seed)
        roomTraffic(net, membersPerNode: 1 + seed % 2, rooms: 2, messages: 3, context: "\(shape) seed \(seed)")
    }

    /// docs/cluster-protocol.md §8.6: a node with no member in a room is not sent the room's messages.
    @Test func roomTrafficStaysOnNodesWithMembers() {
        let net = SimNetwork(nodes: 3, seed: 14)
        net.fullMesh()
        net.deliverAll()
        let a = net.login(0, "a", "x")
        let b = net.login(1, "b", "x")
        let c = net.login(2, "c", "y")
        net.deliverAll()
        let before = [0, 1].map { net.sentLog[.init(from: $0, to: 2)]?.count ?? 0 }
        net.say(a, "only for x")
        net.say(b, "also only for x")
        net.deliverAll()
        let toC = [0, 1].flatMap { (net.sentLog[.init(from: $0, to: 2)] ?? []).dropFirst(before[$0]) }
        #expect(!toC.contains { $0.hasPrefix("MSG ") }, "\(toC)")
        #expect(a.chatLines == ["a - only for x\n", "b - also only for x\n"])
        #expect(b.chatLines == ["b - also only for x\n", "a - only for x\n"])
        #expect(c.chatLines.isEmpty)
        net.expectClean("locality")
    }

    // MARK: Username uniqueness

    /// Two (or three) logins of one name on different nodes before any message moves:
    /// exactly one 200, the rest 403; afterwards every registry agrees, and once the winner
    /// logs out the name is free again everywhere.
    @Test(arguments: 0..<60)
    func racingLoginsExactlyOneWins(seed: Int) {
        let n = 2 + seed % 3
        let net = SimNetwork(nodes: n, seed: UInt64(1000 + seed))
        let shape: String
        if seed % 2 == 0 { net.fullMesh(); shape = "mesh" } else { shape = net.topology(seed / 2) }
        net.deliverAll()
        // Odd seeds skew the nodes' wall clocks, so claim order and id order disagree.
        if seed % 2 == 1 { for i in 0..<n { net.skew[i] = UInt64.random(in: 0..<40, using: &net.rng) } }
        let racers = min(n, seed % 5 == 0 ? 3 : 2)
        var at = Array(net.nodes.indices)
        at.shuffle(using: &net.rng)
        let spellings = ["alice", "Alice", "ALICE"]
        let sinks = (0..<racers).map { net.login(at[$0], spellings[$0], "r\($0)") }
        let ctx = "seed \(seed), \(n) nodes, \(shape), racers on \(at.prefix(racers))"
        #expect(sinks.allSatisfy { !$0.got200 && !$0.got403 }, "\(ctx): settled before any message")
        net.deliverAll()
        let winners = sinks.filter(\.got200), losers = sinks.filter(\.got403)
        #expect(winners.count == 1, "\(ctx): \(winners.count) got 200")
        #expect(losers.count == racers - 1, "\(ctx): \(losers.count) got 403")
        #expect(sinks.allSatisfy { !($0.got200 && $0.got403) }, "\(ctx)")
        #expect(net.holders(of: "alice").count == 1, "\(ctx)")
        for l in losers { #expect(l.finished == [false], "\(ctx)") }
        guard let w = winners.first else { return }
        // The earliest claim wins.
        let winnerID = net[w.node].id
        for node in net.nodes {
            #expect(node.cluster.registry.owner(of: "alice")?.holder == winnerID, "\(ctx): owner on \(node.index)")
        }
        // A later login anywhere is refused while the winner holds the name.
        let late = net.login((w.node + 1) % n, "alice", "x")
        net.deliverAll()
        #expect(late.got403 && !late.got200, "\(ctx): late login")

        net.logout(w)
        net.deliverAll()
        for node in net.nodes {
            #expect(node.cluster.registry.records["alice"] == nil, "\(ctx): stale alice record on node \(node.index): \(node.cluster.registry.records["alice"] ?? [])")
        }
        let again = net.login(losers.first?.node ?? (w.node + 1) % n, "alice", "y")
        net.deliverAll()
        #expect(again.got200, "\(ctx): alice not free after the winner left")
        net.expectClean(ctx)
    }

    @Test func releaseFreesTheNameOnOtherNodes() {
        let net = SimNetwork(nodes: 3, seed: 11)
        net.fullMesh()
        net.deliverAll()
        let first = net.login(0, "alice", "r")
        net.deliverAll()
        #expect(first.got200)
        let taken = net.login(1, "Alice", "r")
        net.deliverAll()
        #expect(taken.got403 && !taken.got200)
        net.logout(first)
        net.deliverAll()
        let second = net.login(1, "ALICE", "r")
        net.deliverAll()
        #expect(second.got200)
        #expect(net.holders(of: "alice") == [1])
        net.expectClean("release")
    }

    @Test func abandonedPendingLoginFreesTheName() {
        let net = SimNetwork(nodes: 2, seed: 12)
        net.linkUp(0, 1)
        net.deliverAll()
        let sink = net.login(0, "alice", "r")
        #expect(!sink.got200 && !sink.got403)
        net[0].hub.abandonLogin(username: ChatName("alice", maxLength: 32)!, sink: sink)
        net.deliverAll()
        for node in net.nodes { #expect(node.cluster.registry.records["alice"] == nil, "node \(node.index)") }
        let other = net.login(1, "alice", "r")
        net.deliverAll()
        #expect(other.got200)
        #expect(sink.lines.isEmpty)
        net.expectClean("abandon")
    }

    // MARK: Failures

    @Test(arguments: 0..<4)
    func deadNodeIsDroppedItsNamesFreedAndPendingClaimCompletes(seed: Int) {
        let net = SimNetwork(nodes: 3, seed: UInt64(300 + seed))
        if seed % 2 == 0 { net.fullMesh() } else { net.chain() }   // in the chain the dead node is the end
        net.deliverAll()
        let carol = net.login(2, "carol", "r")
        let alice = net.login(0, "alice", "r")
        net.deliverAll()
        #expect(carol.got200 && alice.got200)

        net.dead = [2]
        let start = net.nowMs
        let bob = net.login(0, "bob", "r")
        net.deliverAll()
        #expect(!bob.got200, "seed \(seed): bob granted without node 2's answer")
        // Within the timeout the node still counts as alive.
        net.advance(net[0].cluster.peerTimeoutMs - 250)
        #expect(!bob.got200, "seed \(seed): granted before the timeout")
        #expect(net[0].cluster.liveNodes.contains(net[2].id))
        net.advance(1000)
        #expect(net.nowMs - start <= 5000)
        for i in 0..<2 {
            #expect(!net[i].cluster.liveNodes.contains(net[2].id), "seed \(seed): node \(i) still lists the dead node")
            #expect(net[i].cluster.liveNodes.contains(net[1 - i].id), "seed \(seed): node \(i) dropped a live node")
        }
        #expect(bob.got200 && bob.finished == [true], "seed \(seed): pending claim did not complete")
        let carol2 = net.login(1, "carol", "r")
        net.deliverAll()
        #expect(carol2.got200, "seed \(seed): dead node's name not freed")
        net.expectClean("dead seed \(seed)")
    }

    @Test func byeFreesNamesAtOnce() {
        let net = SimNetwork(nodes: 3, seed: 13)
        net.fullMesh()
        net.deliverAll()
        let carol = net.login(2, "carol", "r")
        net.deliverAll()
        #expect(carol.got200)
        net[2].cluster.leave()
        net.deliverAll()
        net.dead = [2]
        #expect(!net[0].cluster.liveNodes.contains(net[2].id))
        let again = net.login(0, "carol", "r")
        net.deliverAll()
        #expect(again.got200)
        net.expectClean("bye")
    }

    // MARK: Partitions heal

    /// {A,B} | {C,D}; `alice` granted on both sides; heal. The earlier claim keeps the name.
    struct Partitioned {
        let net: SimNetwork
        let aliceA: ClusterSink
        let aliceC: ClusterSink
        let bob: ClusterSink
        let dave: ClusterSink
        let winner: Int
        let loser: Int
    }

    static func partitionAndGrantBothSides(seed: Int, sameTime: Bool) -> Partitioned {
        let net = SimNetwork(nodes: 4, seed: UInt64(400 + seed))
        net.fullMesh()
        net.deliverAll()
        let bob = net.login(1, "bob", "lobby")
        let dave = net.login(3, "dave", "lobby")
        net.deliverAll()
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] { net.linkDown(a, b) }
        net.advance(net[0].cluster.peerTimeoutMs + 1000)
        #expect(Set(net[0].cluster.liveNodes) == [net[1].id], "seed \(seed): side 1 did not drop side 2")
        #expect(Set(net[2].cluster.liveNodes) == [net[3].id], "seed \(seed): side 2 did not drop side 1")

        let first = seed % 2 == 0 ? 0 : 2
        let aliceFirst = net.login(first, "alice", "lobby")
        if !sameTime { net.advance(50, stepMs: 50) }
        let aliceSecond = net.login(2 - first, "Alice", "lobby")
        net.deliverAll()
        #expect(aliceFirst.got200 && aliceSecond.got200, "seed \(seed): not granted on both sides")
        let aliceA = first == 0 ? aliceFirst : aliceSecond, aliceC = first == 0 ? aliceSecond : aliceFirst
        let ta = net[0].cluster.registry.own("alice")!.ts, tc = net[2].cluster.registry.own("alice")!.ts
        let winner = (ta, net[0].id) < (tc, net[2].id) ? 0 : 2
        if !sameTime { #expect(winner == first, "seed \(seed): the earlier login is not the earlier claim") }
        return Partitioned(net: net, aliceA: aliceA, aliceC: aliceC, bob: bob, dave: dave, winner: winner, loser: 2 - winner)
    }

    @Test(arguments: 0..<8)
    func partitionHealKeepsTheEarlierClaimAndJoinsRooms(seed: Int) {
        let p = Self.partitionAndGrantBothSides(seed: seed, sameTime: seed >= 4)
        let net = p.net
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] { net.linkUp(a, b) }
        net.deliverAll()
        let ctx = "seed \(seed), winner node \(p.winner)"
        #expect(net.holders(of: "alice") == [p.winner], "\(ctx)")
        let win = p.winner == 0 ? p.aliceA : p.aliceC, lose = p.winner == 0 ? p.aliceC : p.aliceA
        #expect(lose.endRequested, "\(ctx)")
        #expect(lose.lines.last == Notice.nameLost + "\n", "\(ctx)")
        #expect(!win.endRequested && !win.lines.contains(Notice.nameLost + "\n"), "\(ctx)")
        for node in net.nodes {
            #expect(node.cluster.registry.owner(of: "alice")?.holder == net[p.winner].id, "\(ctx): owner on \(node.index)")
            #expect(node.cluster.liveNodes.count == 3, "\(ctx): node \(node.index) sees \(node.cluster.liveNodes.count) nodes")
        }
        // Rooms join up: both sides' members hear each other, exactly once.
        let before = (p.bob.chatLines.count, p.dave.chatLines.count, win.chatLines.count)
        net.say(p.bob, "hi from side one")
        net.say(p.dave, "hi from side two")
        net.deliverAll()
        #expect(p.dave.chatLines.dropFirst(before.1) == ["dave - hi from side two\n", "bob - hi from side one\n"]
                || p.dave.chatLines.dropFirst(before.1) == ["bob - hi from side one\n", "dave - hi from side two\n"], "\(ctx)")
        #expect(p.bob.chatLines.dropFirst(before.0).sorted() == ["bob - hi from side one\n", "dave - hi from side two\n"], "\(ctx)")
        #expect(win.chatLines.dropFirst(before.2).sorted() == ["bob - hi from side one\n", "dave - hi from side two\n"], "\(ctx)")
        net.expectClean(ctx)
    }

    /// After the heal settles and the winner logs out, the name must be free again
    /// cluster-wide (docs/cluster-protocol.md §8.3), as after any other session's end.
    @Test(arguments: 0..<4)
    func nameIsFreeAfterHealWinnerLogsOut(seed: Int) {
        let p = Self.partitionAndGrantBothSides(seed: seed, sameTime: false)
        let net = p.net
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] { net.linkUp(a, b) }
        net.deliverAll()
        #expect(net.holders(of: "alice") == [p.winner])
        net.logout(p.winner == 0 ? p.aliceA : p.aliceC)
        net.advance(1000)
        let ctx = "seed \(seed), winner node \(p.winner), loser node \(p.loser)"
        for node in net.nodes {
            #expect(node.cluster.registry.records["alice"] == nil,
                    "\(ctx): node \(node.index) still records \(node.cluster.registry.records["alice"] ?? [])")
        }
        for n in [1, 3, p.loser] {
            let again = net.login(n, "alice", "lobby")
            net.deliverAll()
            #expect(again.got200, "\(ctx): alice refused on node \(n) after the holder left")
            if again.got200 { net.logout(again); net.advance(1000) }
        }
        net.expectClean(ctx)
    }

    /// A claim in flight on one side when the heal brings a granted claim from the other:
    /// the claim is refused (403), and must not leave a record that blocks the name later.
    @Test func claimRefusedByHealLeavesNoStaleRecord() {
        let net = SimNetwork(nodes: 4, seed: 21)
        net.fullMesh()
        net.deliverAll()
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] { net.linkDown(a, b) }
        net.advance(net[0].cluster.peerTimeoutMs + 1000)
        let aliceA = net.login(0, "alice", "lobby")
        net.deliverAll()
        #expect(aliceA.got200)
        net.advance(100, stepMs: 100)
        // C asks D; D says yes, but D's reply is held back until the heal has reached C.
        let aliceC = net.login(2, "alice", "lobby")
        net.drain(2, 3)
        #expect(!net.pending(3, 2).isEmpty)
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] { net.linkUp(a, b) }
        net.drain(0, 2)
        #expect(aliceC.got403 && !aliceC.got200, "the heal did not refuse C's claim")
        net.deliverAll()
        #expect(net.holders(of: "alice") == [0])
        net.logout(aliceA)
        net.advance(1000)
        for node in net.nodes {
            #expect(node.cluster.registry.records["alice"] == nil,
                    "node \(node.index) still records \(node.cluster.registry.records["alice"] ?? [])")
        }
        let again = net.login(3, "alice", "lobby")
        net.deliverAll()
        #expect(again.got200, "alice refused on D after the holder left")
        net.expectClean("refused by heal")
    }

    // MARK: Topology changes

    /// A chain A–B–C gets a shortcut A–C while A's message is still on its way via B.
    /// The message must still reach C (docs/cluster-protocol.md §8.1: C stayed connected throughout).
    @Test func shortcutLinkDoesNotLoseMessagesInFlight() {
        let net = SimNetwork(nodes: 3, seed: 31)
        net.chain()
        net.deliverAll()
        let a = net.login(0, "a", "r")
        let c = net.login(2, "c", "r")
        net.deliverAll()
        net.say(a, "one")
        net.drain(0, 1)                 // B has it and queued it for C
        #expect(!net.pending(1, 2).isEmpty)
        net.linkUp(0, 2)
        net.say(a, "two")
        net.drain(0, 2)                 // the shortcut delivers first
        net.deliverAll()
        #expect(c.chatLines == ["a - one\n", "a - two\n"])
        net.expectClean("shortcut")
    }

    // MARK: Bad input from peers

    @Test(arguments: [
        "garbage",
        "",
        "MSG",
        "BYE 0123456789abcdef",
        "BYE 0123456789ABCDEF 1",
        "CLAIM 0123456789abcdef 1 Alice 5",
        "TCPCHAT-PEER/2 HELLO 0123456789abcdef 10.0.0.9:8888 nonce open",
        "AUTH abc",
        "ERROR nope",
        // MSG lines, which the runtime's byte path parses on its own (PeerChat).
        "MSG ",
        "MSG 0123456789abcdef 1 r",
        "MSG 0123456789abcdef 1 r u",
        "MSG 0123456789abcde 1 r u text",
        "MSG 0123456789abcdeg 1 r u text",
        "MSG 0123456789ABCDEF 1 r u text",
        "MSG 0123456789abcdef  r u text",
        "MSG 0123456789abcdef -1 r u text",
        "MSG 0123456789abcdef 9223372036854775808 r u text",
        "MSG 0123456789abcdef 99999999999999999999 r u text",
        "MSG 0123456789abcdef 1 R u text",
        "MSG 0123456789abcdef 1  u text",
        "MSG 0123456789abcdef 1 r_x u text",
        "MSG 0123456789abcdef 1 r u_x text",
        "MSG 0123456789abcdef 1 r u ",
        "MSG 0123456789abcdef 1 r uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu text",
        "MSG\t0123456789abcdef 1 r u text",
    ])
    func malformedLineThrows(line: String) {
        let net = SimNetwork(nodes: 2, seed: 41)
        net.linkUp(0, 1)
        net.deliverAll()
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(line: Substring(line), from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        // The runtime's path, from bytes, refuses the same lines.
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(bytesOf: line, from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
    }

    /// Chat from a peer, read from bytes as the runtime does, is delivered without the
    /// general path (the byte path is what runs in production) and exactly as the
    /// general path delivers it, a user name's case and a text's spaces kept.
    @Test func chatFromBytesTakesTheFastPathAndMatchesTheGeneralOne() throws {
        let net = SimNetwork(nodes: 2, seed: 44)
        net.linkUp(0, 1)
        net.deliverAll()
        let bob = net.login(1, "bob", "r")
        net.deliverAll()
        let origin = net[0].id
        let before = net[1].cluster.stats.fastChat
        try net[1].cluster.receive(bytesOf: "MSG \(origin) 1 r Alice hello  world ", from: origin, nowMs: 0, wallMs: net.wallMs(1))
        try net[1].cluster.receive(line: Substring("MSG \(origin) 2 r Alice second line"), from: origin, nowMs: 0, wallMs: net.wallMs(1))
        try net[1].cluster.receive(bytesOf: "MSG \(origin) 3 r Alice ünïcödé ✓", from: origin, nowMs: 0, wallMs: net.wallMs(1))
        // A copy by another path is dropped on both paths.
        try net[1].cluster.receive(bytesOf: "MSG \(origin) 3 r Alice ünïcödé ✓", from: origin, nowMs: 0, wallMs: net.wallMs(1))
        #expect(bob.chatLines == ["Alice - hello  world \n", "Alice - second line\n", "Alice - ünïcödé ✓\n"])
        #expect(net[1].cluster.stats.fastChat == before + 2)
    }

    @Test func chatWithEscapeIsRefused() {
        let net = SimNetwork(nodes: 2, seed: 42)
        net.linkUp(0, 1)
        net.deliverAll()
        let bob = net.login(1, "bob", "r")
        net.deliverAll()
        let line = "MSG \(net[0].id) 1 r mallory bad \u{1B}[2J text"
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(line: Substring(line), from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        #expect(bob.chatLines.isEmpty)
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(bytesOf: line, from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        for bad in ["MSG \(net[0].id) 2 r mallory ", "MSG \(net[0].id) 3 r mallory x\u{7F}", "MSG \(net[0].id) 4 r mallory \u{85}",
                    "MSG \(net[0].id) 5 r mallory " + String(repeating: "x", count: Limits().maxMessageBytes + 1)] {
            #expect(throws: PeerCodecError.self, "\(bad.prefix(60).debugDescription)") {
                try net[1].cluster.receive(line: Substring(bad), from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
            }
            #expect(throws: PeerCodecError.self, "bytes: \(bad.prefix(60).debugDescription)") {
                try net[1].cluster.receive(bytesOf: bad, from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
            }
        }
        #expect(bob.chatLines.isEmpty)
    }

    /// A refused chat line must not be passed on first: the next node would refuse it too
    /// and drop its link to an honest node.
    @Test func refusedChatIsNotForwarded() {
        let net = SimNetwork(nodes: 3, seed: 43)
        net.chain()
        net.deliverAll()
        let carol = net.login(2, "carol", "r")
        net.deliverAll()
        let before = net.sentLog[.init(from: 1, to: 2)]?.count ?? 0
        let line = "MSG \(net[0].id) 1 r mallory bad \u{1B}[2J text"
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(line: Substring(line), from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        let forwarded = (net.sentLog[.init(from: 1, to: 2)] ?? []).dropFirst(before)
        #expect(forwarded.isEmpty, "B forwarded the refused line to C: \(Array(forwarded))")
        net.deliverAll()
        #expect(net.refused.isEmpty, "C dropped its link to B: \(net.refused.map { "\($0.link): \($0.error)" })")
        #expect(carol.chatLines.isEmpty)
    }

    /// Valid text that starts with a combining mark (U+0301): the local room gets it, so
    /// must the other nodes — and the link must survive.
    @Test func chatStartingWithCombiningMarkCrossesNodes() {
        let net = SimNetwork(nodes: 2, seed: 44)
        net.linkUp(0, 1)
        net.deliverAll()
        let alice = net.login(0, "alice", "r")
        let bob = net.login(1, "bob", "r")
        net.deliverAll()
        for text in ["\u{301}accent first", "\u{200D}zwj", "a \u{301} b"] {
            net.say(alice, text)
            net.deliverAll()
            #expect(alice.chatLines.last == "alice - \(text)\n")
            #expect(bob.chatLines.last == "alice - \(text)\n", "\(text.unicodeScalars.map { String($0.value, radix: 16) })")
        }
        net.expectClean("combining")
    }
}

extension Cluster {
    /// The runtime's way in: a line as bytes.
    func receive(bytesOf line: String, from: NodeID, nowMs: UInt64, wallMs: UInt64) throws {
        var s = line
        try s.withUTF8 { try receive(bytes: UnsafeRawBufferPointer($0), from: from, nowMs: nowMs, wallMs: wallMs) }
    }
}
