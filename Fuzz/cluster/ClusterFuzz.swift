// Fuzz target `cluster`: the cluster state machine (Cluster.swift, ClaimRegistry.swift) run
// by a program the fuzzer writes, on 2–3 in-memory nodes (FuzzNet.swift).
//
// Input layout:
//   byte 0    bit 0: 2 or 3 nodes; bits 1-2: initial links (none, full mesh, chain, mesh);
//             bits 3-5: which order the node ids sort in (tie-breaks); bit 6: hostile mode
//             (op 8 is a hostile phantom, below)
//   byte 1    wall-clock skew of each node, 2 bits per node (0, 7, 20, 45 ms)
//   then ops (at most 300), one opcode byte each (value % 15) and its argument bytes:
//     0  login    [node | name | case | room]         a client logs in
//     1  logout   [which]                            a connection closes (session or pending login)
//     2  deliver  [which]                            one line on one busy link
//     3  deliverN [count/seed]                       several lines, fuzzer-chosen links
//     4  drop     [pair]                             a link goes down (its lines in flight are lost)
//     5  heal     [pair]                             a link comes up
//     6  advance  [ms | who]                         the clock moves, nodes tick
//     7  say      [which]                            a member sends a chat message
//     8  inject   [node, phantom, kind, fields...]   a well-formed message from a phantom node
//     9  raw      [node, len, bytes...]              any line, as if a neighbor sent it
//    10  race     [name, nodes, seed x2]             two logins of one name on two nodes
//    11  merge    [...]                              ClaimRegistry merges applied in every order
//    12  settle   [seed]                             deliver everything
//    13  stop     [bye | node]                       a node stops: with BYE (SIGTERM) or killed
//    14  bcast    [which, seed]                      a member speaks in a settled group
//
// Invariants (docs/cluster-protocol.md, SPEC.md §4.2), checked after every op:
//   - no crash; no line a node sends is refused by another node; every line is framed;
//     nothing is sent on a down link; the network always settles;
//   - in every connected group of nodes that is quiet (nothing in flight, nothing held for
//     a gap) and whose nodes all see each other alive, no two sessions hold one name;
//   - race: in such a group, two logins of a free name on two nodes end in exactly one 200
//     and one 403, and the earlier claim wins;
//   - ClaimRegistry: merging several nodes' STATE in any order gives the same registry and
//     the same lost claims;
//   - chat: no member receives a message of another room, twice, or out of its sender's order;
//     bcast: in such a group, a message reaches every member of its room exactly once.
// The network behaves as the runtime does where it matters: links are FIFO per direction,
// lines in flight are lost when a link drops, a link that carries nothing for the peer
// timeout is closed at the next tick (Node.tick), a line that does not decode closes its
// link, a session whose name is lost is logged out after the call that asked.
// Phantom nodes (inject) send only well-formed messages and say BYE last; raw lines may
// be anything but never claim to come from one of the real nodes.
//
// Hostile mode (byte 0 bit 6, or every input with FUZZ_CLUSTER_HOSTILE=1): op 8 is a hostile phantom, an authenticated member that lies
// (docs/security.md): [node, kind, a, b] sends to a node, as if over its link, one of:
//   0 a flood of new origins (HBs from up to 1,021 made-up node ids, each advertising an address)
//   1 an HB listing up to 512 made-up neighbors, or 513 (malformed)
//   2 a forged REPLY, yes or no, from the phantom or a made-up origin, for a real or
//     phantom claimant, on a name in use or not, with the claim's real timestamp or another
//   3 a BYE in the name of a real node (its origin forged; FUZZ_CLUSTER_FORGE_BYE=0 turns it off)
//     only, until open finding 4 (Fuzz/README.md) is fixed; else a BYE of a made-up origin
//   4 a LOAD with counts at Limits.maxWireCount, or past it (malformed)
//   5 a CLAIM from a made-up origin with the earliest timestamp
//   6 a STATE from a made-up origin holding every name, earliest
//   7 a malformed line (a valid one cut short, or bytes)
// Its invariants, on top of the ones above (the end-state agreement is not owed: the
// phantom contradicts itself): after every op each node tracks at most Limits.maxClusterNodes
// others (plus its direct links), each with at most Tunables.maxHeldPerStream held messages, at most maxClusterNodes
// neighbors and Tunables.maxLoadRooms load rooms; it names only nodes it tracks to the
// runtime's dialers (FuzzNode.learned), at most maxNodes plus its links; and, in both modes,
// every login is answered (200 or 403) once claimAnswerMs + peerTimeoutMs + 2 resends have
// passed since it was first seen waiting (checked after every clock advance, on the nodes
// that advance ticked).
//
// At the end every link is healed, everything delivered and the clock run past every
// timeout (25 s, links redialed as they close); then every login is settled, every node
// sees every other alive, the registries agree on every name's owner, the owner is the
// node holding the session, no record outlives its session, and each node's view of the
// others' rooms is right.

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func clusterFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    let program = ClusterProgram(input)
    program.run()
    return 0
}

final class ClusterProgram {
    static let idPool = ["4444444444444444", "8888888888888888", "cccccccccccccccc"]
    /// Phantoms: nodes only known through injected messages; one sorts first, one last.
    static let phantomIDs = [NodeID("0000000000000001")!, NodeID("ffffffffffffffff")!]
    static let names = ["ann", "bob", "cy", "dee"]
    static let rooms = ["r0", "r1", "lobby"]
    static let skews: [UInt64] = [0, 7, 20, 45]
    static let advanceMs: [UInt64] = [50, 100, 250, 500, 1000, 1500, 3100, 10_500]

    var r: FuzzReader
    let net: FuzzNet
    var rng = SplitMix(state: 1)
    /// A raw line from a node that is not ours was accepted: that node may break the
    /// protocol (send after its BYE, contradict itself), so end-state agreement is not owed.
    var byzantine = false
    // Honest phantoms: their control and chat sequence numbers, and whether they said BYE.
    var phantomSeq = [UInt64](repeating: 0, count: 2)
    var phantomChatSeq: [String: UInt64] = [:]
    var phantomGone = [false, false]
    var ops = 0
    /// Hostile mode: op 8 lies (see the header).
    let hostile: Bool
    /// Made-up origins so far (hostile mode): each gets a fresh id.
    var madeUp: UInt64 = 0
    /// When each waiting login was first seen waiting (by sink serial).
    var waitingSince: [Int: UInt64] = [:]
    /// The nodes the last advance ticked (a node decides nothing between its ticks).
    var lastTicked: Set<Int> = []

    init(_ input: [UInt8]) {
        r = FuzzReader(input)
        let cfg = r.byte()
        hostile = ClusterProgram.forcedMode ?? (cfg & 0x40 != 0)
        byzantine = hostile
        let n = 2 + Int(cfg & 1)
        var pool = ClusterProgram.idPool
        // Six orders of three ids.
        let perm = Int((cfg >> 3) & 7) % 6
        if perm & 1 == 1 { pool.swapAt(0, 1) }
        if perm >= 2 { pool.swapAt(perm >= 4 ? 0 : 1, 2) }
        let skewByte = r.byte()
        let skew = (0..<n).map { ClusterProgram.skews[Int((skewByte >> (2 * UInt8($0))) & 3)] }
        net = FuzzNet(ids: pool.prefix(n).map { NodeID($0)! }, skew: skew)
        switch (cfg >> 1) & 3 {
        case 1, 3: for a in 0..<n { for b in (a + 1)..<n where b < n { net.linkUp(a, b, aFirst: true) } }
        case 2: for a in 0..<(n - 1) { net.linkUp(a, a + 1, aFirst: true) }
        default: break
        }
    }

    var n: Int { net.n }

    /// `FUZZ_CLUSTER_HOSTILE=1` runs every input in hostile mode, `=0` none (to measure or
    /// fuzz one mode); unset, byte 0 bit 6 decides.
    static let forcedMode: Bool? = getenv("FUZZ_CLUSTER_HOSTILE").map { String(cString: $0) == "1" }
    /// Hostile BYEs in real nodes' names (finding 4, fixed); `FUZZ_CLUSTER_FORGE_BYE=0` turns them off.
    static let forgeRealBye = getenv("FUZZ_CLUSTER_FORGE_BYE").map { String(cString: $0) != "0" } ?? true

    /// `FUZZ_TRACE=1 .build-fuzz/fuzz/bin/cluster CRASHFILE` prints the program as it runs.
    static let tracing = getenv("FUZZ_TRACE") != nil
    func trace(_ s: @autoclosure () -> String) {
        if ClusterProgram.tracing { fputs("[t=\(net.nowMs)] \(s())\n", stderr) }
    }

    func run() {
        trace("\(n) nodes \(net.ids.map(\.text)), skew \(net.skew), links \((0..<n).flatMap { a in (0..<n).filter { net.up[a][$0] && a < $0 }.map { "\(a)-\($0)" } })")
        while !r.atEnd && ops < 300 {
            ops += 1
            let op = r.byte() % 15
            let before = r.pos
            step(op)
            trace("op \(ops): \(hostile && op == 8 ? "hostile" : ClusterProgram.opNames[Int(op)]) \(hex(r.bytes[before..<r.pos]))")
            checkQuietGroups()
            if hostile { checkBounds() }
            if op == 6 { checkLoginsAnswered(ticked: lastTicked) }
        }
        if ClusterProgram.tracing { fputs(dump(), stderr) }
        finish()
        if ClusterProgram.tracing { fputs("end:\n" + dump(), stderr) }
    }
    static let opNames = ["login", "logout", "deliver", "deliverN", "drop", "heal", "advance", "say", "inject", "raw", "race", "merge", "settle", "stop", "bcast"]

    // MARK: Ops

    func step(_ op: UInt8) {
        switch op {
        case 0:
            let a = r.byte()
            let node = Int(a & 3) % n
            guard !net.dead.contains(node) else { return }
            var name = ClusterProgram.names[Int((a >> 2) & 3)]
            if a & 0x10 != 0 { name = name.prefix(1).uppercased() + name.dropFirst() }
            net.login(node, display: name, room: ClusterProgram.rooms[Int(a >> 5) % 3])
        case 1:
            let live = net.sinks.filter { !$0.gone && ($0.session != nil || !$0.settled) }
            if !live.isEmpty { net.disconnect(live[Int(r.byte()) % live.count]) }
        case 2:
            let busy = net.busyLinks()
            let a = Int(r.byte())
            if !busy.isEmpty { let (x, y) = busy[a % busy.count]; net.deliver(x, y) }
        case 3:
            let a = r.byte()
            var local = SplitMix(state: UInt64(a) &* 0x9E37)
            for _ in 0..<(1 + Int(a & 15)) {
                let busy = net.busyLinks()
                if busy.isEmpty { break }
                let (x, y) = busy[local.below(busy.count)]
                net.deliver(x, y)
            }
        case 4:
            let (a, b) = pair(r.byte())
            net.linkDown(a, b)
        case 5:
            let v = r.byte()
            let (a, b) = pair(v)
            net.linkUp(a, b, aFirst: v & 0x80 == 0)
        case 6:
            let a = r.byte()
            net.nowMs += ClusterProgram.advanceMs[Int(a & 7)]
            let who = Int((a >> 3) & 3)
            let only = who == 0 ? nil : (who - 1) % n
            net.tick(only: only)
            lastTicked = only.map { [$0] } ?? Set(0..<n)
        case 7:
            let members = net.sinks.filter { $0.session != nil && !$0.gone }
            if !members.isEmpty { net.say(members[Int(r.byte()) % members.count]) }
        case 13:
            let a = r.byte()
            let k = Int(a >> 1) % n
            // Keep at least two nodes running.
            if net.live.count > 2 { net.stop(k, bye: a & 1 == 0) }
        case 14: broadcast()
        case 8: if hostile { hostilePhantom() } else { inject() }
        case 9: injectRaw()
        case 10: race()
        case 11: mergeCommutes()
        default:
            rng = SplitMix(state: UInt64(r.byte()))
            net.deliverAll(&rng)
        }
    }

    func pair(_ v: UInt8) -> (Int, Int) {
        if n == 2 { return (0, 1) }
        return [(0, 1), (0, 2), (1, 2)][Int(v & 0x7F) % 3]
    }

    // MARK: Injected messages

    func timestamp(mode: UInt8, name: String, at node: Int) -> UInt64 {
        let b = r.byte()
        switch mode & 3 {
        case 0: return HybridClock.pack(ms: net.wallMs(node) - UInt64(b) * 4, counter: UInt64(b & 3))
        case 1: return net[node].cluster.registry.records[name]?.first?.ts ?? HybridClock.pack(ms: net.wallMs(node), counter: UInt64(b))
        case 2: return UInt64(b)
        default:
            // Far ahead of every clock, up to the codec's limit (finding 2, fixed in d3f09bc:
            // the receiver's hybrid clock must not follow it).
            return UInt64(Int64.max) - UInt64(b)
        }
    }

    /// A well-formed message from a phantom node, arriving at a node as if over a link from
    /// the phantom. Phantoms are honest about order: BYE is their last message.
    func inject() {
        let node = Int(r.byte()) % n
        if net.dead.contains(node) { r.pos += 4; return }
        let head = r.byte()
        let p = Int(head & 1)
        guard !phantomGone[p] else { return }
        let origin = ClusterProgram.phantomIDs[p]
        let kind = (head >> 1) % 9
        let seqByte = r.byte()
        func controlSeq() -> UInt64 {
            let last = phantomSeq[p]
            let seq: UInt64
            switch seqByte & 3 {
            case 0: seq = last + 1
            case 1: seq = max(last, 1)                       // a copy of the last one
            case 2: seq = last + 2 + UInt64((seqByte >> 2) & 3)   // a gap: some were lost
            default: seq = max(1, UInt64(seqByte >> 2))      // any, usually old (0 is a direct REPLY's, protocol 3)
            }
            phantomSeq[p] = max(last, seq)
            return seq
        }
        let a = r.byte(), b = r.byte()
        let name = ClusterProgram.names[Int(a & 3)]
        let msg: PeerMessage
        switch kind {
        case 0:
            // Version 1 lists nobody, 2 the other phantom; `=` (a & 8) says "unchanged" for
            // whichever version the bit picks, known to the receiver or not.
            let version: UInt64 = a & 4 != 0 ? 2 : 1
            msg = .heartbeat(Flood(origin: origin, seq: controlSeq()), advertise: "10.9.9.\(p):1", version: version,
                             neighbors: a & 8 != 0 ? nil : (a & 4 != 0 ? [ClusterProgram.phantomIDs[1 - p]] : []))
        case 1:
            var claims: [NameClaim] = []
            for (i, nm) in ClusterProgram.names.enumerated() where b & (1 << UInt8(i)) != 0 {
                claims.append(NameClaim(name: nm, ts: timestamp(mode: a >> 2, name: nm, at: node)))
            }
            let rooms = ClusterProgram.rooms.enumerated().filter { b & (0x10 << UInt8($0.offset)) != 0 }.map(\.element)
            msg = .state(Flood(origin: origin, seq: controlSeq()), rooms: rooms, claims: claims)
        case 2:
            msg = .room(Flood(origin: origin, seq: controlSeq()), joined: b & 1 == 0, room: ClusterProgram.rooms[Int(b >> 1) % 3])
        case 3:
            msg = .claim(Flood(origin: origin, seq: controlSeq()), NameClaim(name: name, ts: timestamp(mode: a >> 2, name: name, at: node)))
        case 4:
            let who = Int(b >> 1) % (n + 2)
            let claimant = who < n ? net.ids[who] : ClusterProgram.phantomIDs[who - n]
            msg = .reply(Flood(origin: origin, seq: controlSeq()), claimant: claimant,
                         NameClaim(name: name, ts: timestamp(mode: a >> 2, name: name, at: who < n ? who : node)), granted: b & 1 == 0)
        case 5:
            msg = .release(Flood(origin: origin, seq: controlSeq()), NameClaim(name: name, ts: timestamp(mode: a >> 2, name: name, at: node)))
        case 6:
            phantomSeq[p] += 1
            phantomGone[p] = true
            msg = .bye(Flood(origin: origin, seq: phantomSeq[p]))
        case 7:
            msg = .load(Flood(origin: origin, seq: controlSeq()), sessions: Int(b),
                        rooms: b & 1 == 0 ? [] : [RoomCount(room: ClusterProgram.rooms[Int(a) % 3], members: Int(b >> 1))])
        default:
            let room = ClusterProgram.rooms[Int(b) % 3]
            let key = "\(p)/\(room)"
            let last = phantomChatSeq[key] ?? 0
            let seq: UInt64 = seqByte & 3 == 2 ? last + 2 : seqByte & 3 == 1 ? max(last, 1) : last + 1
            phantomChatSeq[key] = max(last, seq)
            msg = .chat(Flood(origin: origin, seq: seq), room: room, user: "Ph\(p)", text: "phantom \(a)")
        }
        trace("inject at node \(node): \(msg.encoded)")
        do {
            try net[node].cluster.receive(line: Substring(msg.encoded), from: origin, nowMs: net.nowMs, wallMs: net.wallMs(node))
        } catch {
            fuzzFail("a well-formed message was refused: \(msg.encoded.debugDescription): \(error)")
        }
        net.endRequestedSessions()
    }

    // MARK: Hostile phantom

    /// A node id no real node or honest phantom has: `e` and 15 hex digits of a counter.
    func madeUpID() -> NodeID {
        madeUp += 1
        let digits = Array("0123456789abcdef".utf8)
        let v = madeUp
        return NodeID(String(unsafeUninitializedCapacity: 16) { b in
            b[0] = UInt8(ascii: "e")
            for i in 1..<16 { b[i] = digits[Int((v >> (UInt64(15 - i) * 4)) & 15)] }
            return 16
        })!
    }

    /// One line to `node` as if the hostile phantom (phantom 1) sent it over its link. A line
    /// the node refuses would close that link: nothing else follows from it.
    func hostileSend(_ node: Int, _ line: String) {
        trace("hostile at node \(node): \(line.prefix(160))")
        _ = try? net[node].cluster.receive(line: Substring(line), from: ClusterProgram.phantomIDs[1], nowMs: net.nowMs, wallMs: net.wallMs(node))
        net.endRequestedSessions()
    }

    func hostilePhantom() {
        let node = Int(r.byte()) % n
        let kind = r.byte() % 8
        let a = r.byte(), b = r.byte()
        if net.dead.contains(node) { return }
        let names = ClusterProgram.names + ["zed"]
        let name = names[Int(a) % names.count]
        let phantom = ClusterProgram.phantomIDs[1]
        func seq() -> UInt64 { phantomSeq[1] += 1; return phantomSeq[1] }
        switch kind {
        case 0:
            for _ in 0..<(1 + Int(a) * 4) {
                let o = madeUpID()
                hostileSend(node, PeerMessage.heartbeat(Flood(origin: o, seq: 1), advertise: "10.66.\(madeUp >> 8 & 255).\(madeUp & 255):\(1 + Int(b))",
                                                        version: 1, neighbors: b & 1 == 0 ? [] : [phantom]).encoded)
            }
        case 1:
            let count = b & 1 == 0 ? min(Limits.maxClusterNodes, 1 + Int(a) * 8) : Limits.maxClusterNodes + 1
            let list = (0..<count).map { _ in madeUpID().text }.joined(separator: ",")
            hostileSend(node, "HB \(phantom) \(seq()) 10.66.0.1:1 1 \(list)")
        case 2:
            let who = Int(b >> 2) % (n + 1)
            let claimant = who < n ? net.ids[who] : phantom
            let real = who < n ? net[who].cluster.registry.own(name)?.ts : nil
            let ts = b & 2 == 0 ? (real ?? 5) : UInt64(a)
            let origin = b & 0x80 == 0 ? phantom : madeUpID()
            let s = origin == phantom ? seq() : 1
            hostileSend(node, PeerMessage.reply(Flood(origin: origin, seq: s), claimant: claimant, NameClaim(name: name, ts: ts), granted: b & 1 == 0).encoded)
        case 3:
            // Finding 4 (Fuzz/README.md, fixed): a BYE forged in a real node's name was
            // sequenced before it was ignored, so it could take that node's stream.
            guard ClusterProgram.forgeRealBye else {
                hostileSend(node, PeerMessage.bye(Flood(origin: madeUpID(), seq: UInt64(a))).encoded)
                return
            }
            let victim = net.ids[Int(b) % n]
            guard victim != net.ids[node] else { return }
            let s = b & 0x80 == 0 ? UInt64(a) : UInt64(Int64.max) - UInt64(a)
            hostileSend(node, PeerMessage.bye(Flood(origin: victim, seq: s)).encoded)
        case 4:
            if b & 1 == 0 {
                let rooms = (0..<(Int(a) % 8)).map { RoomCount(room: "r\($0)", members: Limits.maxWireCount) }
                hostileSend(node, PeerMessage.load(Flood(origin: phantom, seq: seq()), sessions: Limits.maxWireCount, rooms: rooms).encoded)
            } else {
                hostileSend(node, "LOAD \(phantom) \(seq()) \(Int64.max) r0:\(Limits.maxWireCount + 1)")
            }
        case 5:
            hostileSend(node, PeerMessage.claim(Flood(origin: madeUpID(), seq: 1), NameClaim(name: name, ts: UInt64(b & 3))).encoded)
        case 6:
            let claims = names.map { NameClaim(name: $0, ts: 1) }
            hostileSend(node, PeerMessage.state(Flood(origin: madeUpID(), seq: 1), rooms: ClusterProgram.rooms, claims: claims).encoded)
        default:
            let line = PeerMessage.reply(Flood(origin: phantom, seq: seq()), claimant: net.ids[node], NameClaim(name: name, ts: 1), granted: true).encoded
            let cut = line.utf8.prefix(Int(a) % line.utf8.count)
            hostileSend(node, b & 1 == 0 ? String(decoding: cut, as: UTF8.self) : "\(String(decoding: cut, as: UTF8.self))\u{7f}\u{1b}[2J \(b)")
        }
    }

    /// Memory a hostile member can make a node hold stays under the documented bounds
    /// (docs/cluster-protocol.md §4–5).
    func checkBounds() {
        for a in net.live {
            let c = net[a].cluster
            require(c.nodes.count <= Limits.maxClusterNodes + c.neighbors.count, "op \(ops): node \(a) tracks \(c.nodes.count) nodes")
            for (id, remote) in c.nodes {
                require(remote.control.held.count <= Tunables.maxHeldPerStream + 1, "op \(ops): node \(a) holds \(remote.control.held.count) messages of \(id)")
                require(remote.neighbors.count <= Limits.maxClusterNodes, "op \(ops): node \(a) keeps \(remote.neighbors.count) neighbors of \(id)")
                require(remote.roomMembers.count <= Tunables.maxLoadRooms, "op \(ops): node \(a) keeps \(remote.roomMembers.count) load rooms of \(id)")
                require(remote.sessions <= Limits.maxWireCount, "op \(ops): node \(a) keeps a session count \(remote.sessions) for \(id)")
            }
        }
    }

    /// A login is answered within the claim deadline (docs/cluster-protocol.md §5: a silent
    /// node is a failed node), whatever any member says or does not say.
    func checkLoginsAnswered(ticked: Set<Int>) {
        for s in net.sinks {
            guard s.pending, !net.dead.contains(s.node) else { waitingSince[s.serial] = nil; continue }
            let since = waitingSince[s.serial] ?? net.nowMs
            waitingSince[s.serial] = since
            guard ticked.contains(s.node) else { continue }
            let c = net[s.node].cluster
            let bound = c.claimAnswerMs + c.peerTimeoutMs + 2 * Tunables.claimResendMs
            require(net.nowMs - since <= bound,
                    "op \(ops): the login of \(s.display) on node \(s.node) has waited \(net.nowMs - since) ms (bound \(bound))\n\(dump())")
        }
    }

    /// Any line, as a neighbor (or, with no link up, a phantom) sent it. A line that does not
    /// decode drops the link, as the runtime does.
    func injectRaw() {
        let node = Int(r.byte()) % n
        let len = Int(r.byte())
        var bytes = Array(r.take(len))
        if net.dead.contains(node) { return }
        if let nl = bytes.firstIndex(of: 0x0A) { bytes = Array(bytes[..<nl]) }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard let line = String(validating: bytes, as: UTF8.self) else { return }   // PeerLink refuses it before the cluster
        if let msg = try? PeerMessage.decode(line) {
            if let f = msg.flood, net.ids.contains(f.origin) { return }   // forging our own nodes: out of scope
            if case .chat(_, _, _, let text) = msg, text.hasPrefix("#") { return }   // would fake the chat checks
            if msg.flood != nil { byzantine = true }
        }
        let neighbors = (0..<n).filter { net.up[$0][node] }
        let from = neighbors.first
        do {
            try net[node].cluster.receive(line: Substring(line), from: from.map { net.ids[$0] } ?? ClusterProgram.phantomIDs[0],
                                          nowMs: net.nowMs, wallMs: net.wallMs(node))
        } catch {
            if let from { net.linkDown(from, node) }
        }
        net.endRequestedSessions()
    }

    // MARK: Groups of nodes that have exchanged everything

    /// Nothing in flight inside the group, nothing waiting for a gap, every node sees every
    /// other alive.
    func isQuiet(_ group: Set<Int>) -> Bool {
        for a in group { for b in group where !net.queues[a][b].isEmpty { return false } }
        for a in group {
            let c = net[a].cluster
            for (_, remote) in c.nodes {
                if !remote.control.held.isEmpty || remote.chat.values.contains(where: { !$0.held.isEmpty }) { return false }
            }
            for b in group where b != a && c.nodes[net.ids[b]] == nil { return false }
        }
        return true
    }

    func checkQuietGroups() {
        for group in net.components() where group.count > 1 && isQuiet(group) {
            var holders: [String: [Int]] = [:]
            for a in group.sorted() { for key in net[a].hub.sessions.keys { holders[key, default: []].append(a) } }
            for (key, at) in holders {
                require(at.count == 1, "op \(ops): \(key) is held on nodes \(at) of the quiet group \(group.sorted()) (t=\(net.nowMs))\n\(dump())")
            }
        }
    }

    // MARK: Races

    func race() {
        let a = r.byte(), s1 = r.byte(), s2 = r.byte()
        let i = Int(a & 3) % n
        let j = (i + 1 + Int((a >> 2) & 1)) % n
        guard i != j, !net.dead.contains(i), !net.dead.contains(j) else { return }
        guard let group = net.components().first(where: { $0.contains(i) }), group.contains(j) else { return }
        rng = SplitMix(state: UInt64(s1) << 8 | UInt64(s2))
        guard settle(group) else { return }
        // A name nobody in the group has a record of.
        let start = Int((a >> 4) & 3)
        guard let key = (0..<4).map({ ClusterProgram.names[(start + $0) % 4] }).first(where: { name in
            group.allSatisfy { net[$0].cluster.registry.records[name] == nil && net[$0].hub.sessions[name] == nil }
        }) else { return }
        let views = group.map { Set(net[$0].cluster.nodes.keys) }
        trace("race on \(key): nodes \(i) and \(j)")
        let first = net.login(i, display: key, room: ClusterProgram.rooms[0])
        let second = net.login(j, display: key.uppercased(), room: ClusterProgram.rooms[1])
        require(!first.settled && !second.settled, "a racing login was answered before any message moved")
        guard let ts1 = net[i].cluster.registry.own(key)?.ts, let ts2 = net[j].cluster.registry.own(key)?.ts else {
            fuzzFail("a pending login has no claim")
        }
        net.deliverAll(&rng, within: group)
        var waited: UInt64 = 0
        while !(first.settled && second.settled) && waited < 3000 {
            net.nowMs += 100
            waited += 100
            net.tick()
            net.deliverAll(&rng, within: group)
        }
        // Only conclusive if the group stayed whole and alive throughout.
        guard group.map({ Set(net[$0].cluster.nodes.keys) }) == views, isQuiet(group) else { return }
        require(first.settled && second.settled, "a race on \(key) between nodes \(i) and \(j) did not settle in 3 s\n\(dump())")
        require(first.got200 != second.got200, "race on \(key), nodes \(i) and \(j): 200 for \(first.got200), \(second.got200)\n\(dump())")
        let firstEarlier = (ts1, net.ids[i]) < (ts2, net.ids[j])
        trace("race settled: node \(i) \(first.got200 ? 200 : 403), node \(j) \(second.got200 ? 200 : 403)")
        require(first.got200 == firstEarlier, "race on \(key): the later claim won (ts \(ts1) on \(i), \(ts2) on \(j))")
    }

    /// Every node of the group sees exactly the group alive, nothing in flight or held.
    func isSettled(_ group: Set<Int>) -> Bool {
        isQuiet(group) && group.allSatisfy { x in
            Set(net[x].cluster.nodes.keys) == Set(group.filter { $0 != x }.map { net.ids[$0] })
        }
    }

    /// Lets a group settle: everything delivered; if need be the clock runs (1 s steps, at
    /// most 5 s) so nodes outside the group time out and gaps are given up.
    func settle(_ group: Set<Int>) -> Bool {
        net.deliverAll(&rng, within: group)
        var rounds = 0
        while !isSettled(group) && rounds < 5 {
            rounds += 1
            net.nowMs += 1000
            net.tick()
            net.deliverAll(&rng, within: group)
        }
        return isSettled(group)
    }

    // MARK: Chat in a settled group

    /// SPEC.md §4.2.1: in a settled group, a member's message reaches every member of its
    /// room, on every node of the group, exactly once.
    func broadcast() {
        let a = r.byte(), seed = r.byte()
        let members = net.sinks.filter { $0.session != nil && !$0.gone }
        guard !members.isEmpty else { return }
        let sender = members[Int(a) % members.count]
        guard let group = net.components().first(where: { $0.contains(sender.node) }) else { return }
        rng = SplitMix(state: UInt64(seed) | 0x100)
        guard settle(group), sender.session != nil, !sender.gone else { return }
        let views = group.map { Set(net[$0].cluster.nodes.keys) }
        let receivers = net.sinks.filter { $0.session != nil && !$0.gone && group.contains($0.node) && $0.room == sender.room }
        let before = receivers.map { $0.lines.count }
        net.say(sender)
        let line = "\(sender.display) - #\(sender.serial).\(sender.said - 1)\n"
        trace("bcast \(line.dropLast()) from node \(sender.node) to \(receivers.map { "\($0.display)@\($0.node)" })")
        func got(_ k: Int) -> Int { receivers[k].lines.dropFirst(before[k]).filter { $0 == line }.count }
        net.deliverAll(&rng, within: group)
        var waited: UInt64 = 0
        while receivers.indices.contains(where: { got($0) == 0 && !receivers[$0].gone }) && waited < 3000 {
            net.nowMs += 100
            waited += 100
            net.tick()
            net.deliverAll(&rng, within: group)
        }
        guard group.map({ Set(net[$0].cluster.nodes.keys) }) == views else { return }
        for k in receivers.indices where !receivers[k].gone {
            require(got(k) == 1, "\(line.dropLast()) from \(sender.display)@\(sender.node) reached \(receivers[k].display)@\(receivers[k].node) \(got(k)) times in a settled group\n\(dump())")
        }
    }

    // MARK: ClaimRegistry merges commute

    func mergeCommutes() {
        let ids = [NodeID("1111111111111111")!, NodeID("5555555555555555")!, NodeID("9999999999999999")!, NodeID("dddddddddddddddd")!]
        let meIndex = Int(r.byte()) % 4
        var reg = ClaimRegistry(me: ids[meIndex])
        let others = ids.indices.filter { $0 != meIndex }.map { ids[$0] }
        func state() -> [NameClaim] {
            let mask = r.byte()
            return ClusterProgram.names.enumerated().filter { mask & (1 << UInt8($0.offset)) != 0 }
                .map { NameClaim(name: $0.element, ts: UInt64(r.byte() % 6)) }
        }
        for _ in 0..<(Int(r.byte()) % 8) {
            let a = r.byte(), b = r.byte()
            let name = ClusterProgram.names[Int(a >> 3) % 4]
            let ts = UInt64(b % 6)
            let other = others[Int(b >> 4) % 3]
            switch a % 5 {
            case 0: if reg.beginLocal(name, ts: ts) && a & 0x80 != 0 { reg.grantLocal(name, ts: ts) }
            case 1: _ = reg.answer(NameClaim(name: name, ts: ts), from: other, nowMs: UInt64(b))
            case 2: _ = reg.merge(state: state(), of: other)
            case 3: reg.release(NameClaim(name: name, ts: ts), holder: a & 0x80 != 0 ? reg.me : other)
            default: reg.drop(other)
            }
        }
        let count = 2 + Int(r.byte() & 1)
        let states = (0..<count).map { _ in state() }
        let orders: [[Int]] = count == 2 ? [[0, 1], [1, 0]] : [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
        struct Outcome: Equatable {
            var records: [String: [String]]
            var kicked: Set<NameClaim>
            var refused: Set<NameClaim>
            var owners: [String: String]
        }
        var outcomes: [Outcome] = []
        for order in orders {
            var c = reg
            var kicked = Set<NameClaim>(), refused = Set<NameClaim>()
            for k in order {
                let (kk, rf) = c.merge(state: states[k], of: others[k])
                kicked.formUnion(kk)
                refused.formUnion(rf)
            }
            var records: [String: [String]] = [:]
            var owners: [String: String] = [:]
            for (name, list) in c.records {
                records[name] = list.map { "\($0.holder):\($0.ts):\($0.granted):\($0.heardMs)" }.sorted()
                owners[name] = c.owner(of: name).map { "\($0.holder):\($0.ts)" }
            }
            outcomes.append(Outcome(records: records, kicked: kicked, refused: refused, owners: owners))
        }
        for (k, o) in outcomes.enumerated() {
            require(o == outcomes[0], "merges do not commute: order \(orders[k]) gives \(o), order \(orders[0]) gives \(outcomes[0]); states \(states)")
        }
    }

    // MARK: The end

    func finish() {
        // Heal everything, deliver everything, run the clock past every timeout.
        let live = net.live
        for a in live { for b in live where a < b { net.linkUp(a, b, aFirst: true) } }
        rng = SplitMix(state: 0x5eed)
        net.deliverAll(&rng)
        checkQuietGroups()
        for _ in 0..<25 {
            net.nowMs += 1000
            net.tick()
            // Dialers redial closed links (a link silent too long is closed by the tick).
            for a in live { for b in live where a < b { net.linkUp(a, b, aFirst: true) } }
            net.deliverAll(&rng)
            checkQuietGroups()
        }
        let ctx = "after healing and 25 s (t=\(net.nowMs))"
        for s in net.sinks where !s.gone {
            require(s.settled, "\(ctx): the login of \(s.display) on node \(s.node) never settled\n\(dump())")
        }
        for a in live {
            let alive = Set(net[a].cluster.nodes.keys)
            require(alive == Set(live.filter { $0 != a }.map { net.ids[$0] }), "\(ctx): node \(a) sees \(alive.map(\.text).sorted()) alive\n\(dump())")
        }
        // Sessions: at most one per name in the cluster.
        var holder: [String: Int] = [:]
        for a in live {
            for key in net[a].hub.sessions.keys {
                require(holder[key] == nil, "\(ctx): \(key) held on nodes \(holder[key]!) and \(a)\n\(dump())")
                holder[key] = a
            }
        }
        if !byzantine {
            var names = Set<String>()
            for a in live { names.formUnion(net[a].cluster.registry.records.keys) }
            names.formUnion(holder.keys)
            for name in names.sorted() {
                let owners = live.map { (node: $0, owner: net[$0].cluster.registry.owner(of: name)) }
                if let h = holder[name] {
                    let own = net[h].cluster.registry.own(name)
                    require(own?.granted == true, "\(ctx): node \(h) holds \(name) without a granted claim\n\(dump())")
                    for (a, o) in owners {
                        require(o?.holder == net.ids[h] && o?.ts == own?.ts,
                                "\(ctx): node \(a) thinks \(name) is owned by \(String(describing: o)), but node \(h) holds it\n\(dump())")
                    }
                } else {
                    for (a, o) in owners {
                        require(o == nil, "\(ctx): node \(a) keeps a record of \(name) (\(String(describing: o))) that no session holds\n\(dump())")
                    }
                }
            }
            // Each node knows which rooms the others follow.
            for a in live {
                require(net[a].hub.announced == Set(net[a].hub.rooms.keys), "\(ctx): node \(a) announces \(net[a].hub.announced.sorted()) but has rooms \(net[a].hub.rooms.keys.sorted())")
                for b in live where b != a {
                    let seen = net[b].cluster.nodes[net.ids[a]]?.rooms ?? []
                    require(seen == net[a].hub.announced, "\(ctx): node \(b) thinks node \(a) follows \(seen.sorted()), it follows \(net[a].hub.announced.sorted())")
                }
            }
        }
        checkChat()
    }

    /// No member gets a message of another room, twice, or out of its sender's order; a
    /// sender gets all of its own messages back at once (the echo).
    func checkChat() {
        let bySerial = Dictionary(uniqueKeysWithValues: net.sinks.map { ($0.serial, $0) })
        for s in net.sinks {
            var lastSeen: [Int: Int] = [:]
            for line in s.lines where line.hasPrefix("#") == false {
                guard let dash = line.range(of: " - #") else { continue }
                let body = line[dash.upperBound...].dropLast()   // "<serial>.<k>"
                let parts = body.split(separator: ".")
                guard parts.count == 2, let serial = Int(parts[0]), let k = Int(parts[1]), let sender = bySerial[serial] else { continue }
                require(sender.room == s.room, "\(s.display)@\(s.node) in \(s.room) got \(line.debugDescription) from room \(sender.room)")
                if let last = lastSeen[serial] {
                    require(k > last, "\(s.display)@\(s.node) got message \(k) of sender \(serial) after \(last): duplicated or reordered\n\(dump())")
                }
                lastSeen[serial] = k
            }
            if s.said > 0 {
                let own = s.lines.filter { $0.hasPrefix("\(s.display) - #\(s.serial).") }
                require(own.count == s.said, "\(s.display)@\(s.node) said \(s.said), got \(own.count) echoes")
            }
        }
    }

    // MARK: Diagnostics

    func dump() -> String {
        var out = "t=\(net.nowMs) byzantine=\(byzantine)\n"
        for a in 0..<n {
            let node = net[a]
            let links = (0..<n).filter { net.up[a][$0] }
            out += "node \(a) \(node.id)\(net.dead.contains(a) ? " (stopped)" : ""): links \(links), alive \(node.cluster.nodes.keys.map(\.text).sorted())\n"
            out += "  sessions \(node.hub.sessions.keys.sorted()) rooms \(node.hub.rooms.keys.sorted()) announced \(node.hub.announced.sorted())\n"
            for (name, list) in node.cluster.registry.records.sorted(by: { $0.key < $1.key }) {
                out += "  \(name): " + list.map { "\($0.holder.text.prefix(4)) ts=\($0.ts) \($0.granted ? "granted" : "asked")" }.joined(separator: "; ") + "\n"
            }
            for b in 0..<n where !net.queues[a][b].isEmpty { out += "  queue \(a)->\(b): \(net.queues[a][b].count) lines\n" }
        }
        for s in net.sinks {
            out += "sink \(s.serial) \(s.display)@\(s.node) \(s.room): \(s.lines.filter { !$0.contains(" - #") }.map { $0.debugDescription }) gone=\(s.gone)\n"
        }
        return out
    }
}
