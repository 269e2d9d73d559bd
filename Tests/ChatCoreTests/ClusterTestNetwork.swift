import Testing
@testable import ChatCore
import TestSupport

// A deterministic simulated network for the cluster core: N `Hub`+`Cluster` nodes wired
// as the runtime wires them, links that are FIFO per direction, a seeded scheduler that
// picks which link delivers next, and a fake clock. No sockets, no threads, no sleeps.

/// The simulations' generator: SplitMix64 from a scrambled seed, so every interleaving is
/// reproducible from its seed (and the same as before the generator was shared).
struct ClusterRNG: RandomNumberGenerator {
    private var inner: SplitMix64
    init(seed: UInt64) { inner = SplitMix64(seed: seed &* 0x2545F4914F6CDD1D &+ 0x1234_5678) }
    mutating func next() -> UInt64 { inner.next() }
}

/// A session sink for cluster tests: records every line, the settled login, and a request
/// to end the session (which the network honours later, as the runtime would).
final class ClusterSink: SessionSink {
    let node: Int
    let user: String
    let room: String
    var received: [String] = []
    var session: Session?
    /// `loginFinished` calls: true for a session, false for nil.
    var finished: [Bool] = []
    var endRequested = false
    var loggedOut = false

    init(node: Int, user: String, room: String) { self.node = node; self.user = user; self.room = room }

    func enqueue(_ payload: Payload, length: Int) {
        received.append(String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self))
    }
    func loginFinished(_ s: Session?) {
        finished.append(s != nil)
        if let s { session = s }
    }
    func endSession() { endRequested = true }

    var got200: Bool { received.contains("200\n") }
    var got403: Bool { received.contains("403\n") }
    /// Lines after the login reply.
    var chatLines: [String] { received.filter { $0 != "200\n" && $0 != "403\n" } }
}

/// One simulated node: its hub, its cluster, and the transport the cluster writes to.
final class SimNode: ClusterTransport {
    let index: Int
    let id: NodeID
    let address: String
    let hub: Hub
    let cluster: Cluster
    unowned let net: SimNetwork
    var learned: [NodeID: String] = [:]

    init(index: Int, id: NodeID, net: SimNetwork) {
        self.index = index
        self.id = id
        self.net = net
        address = "10.0.0.\(index + 1):8888"
        hub = Hub(limits: Limits())
        cluster = Cluster(me: id, advertise: address, hub: hub)
        hub.cluster = cluster
        cluster.transport = self
        cluster.clock = { [unowned net] in (net.nowMs, net.wallMs(index)) }
    }

    func send(_ line: Payload, to neighbor: NodeID) { net.enqueue(from: index, to: neighbor, line) }
    func learned(node: NodeID, address: String) { learned[node] = address }
}

final class SimNetwork {
    struct Link: Hashable, CustomStringConvertible {
        let from: Int
        let to: Int
        var description: String { "\(from)->\(to)" }
    }

    var rng: ClusterRNG
    private(set) var nodes: [SimNode] = []
    private var index: [NodeID: Int] = [:]
    /// Lines in flight per direction, oldest first.
    private var queues: [Link: [String]] = [:]
    private(set) var up: Set<Link> = []
    /// Nodes that are hung: nothing is delivered to or from them and they are not ticked.
    var dead: Set<Int> = []
    var nowMs: UInt64 = 0
    let wallBase: UInt64 = 1_700_000_000_000
    /// Per-node wall-clock skew in ms.
    var skew: [Int: UInt64] = [:]
    /// `receive` calls that threw (the runtime drops the link then), in order.
    private(set) var refused: [(link: Link, line: String, error: String)] = []
    /// Anything the cluster did that a runtime could not do (send on a down link, bad framing).
    private(set) var violations: [String] = []
    /// Every line sent, per link, for inspection.
    private(set) var sentLog: [Link: [String]] = [:]
    private(set) var sinks: [ClusterSink] = []
    private(set) var delivered = 0

    init(nodes n: Int, seed: UInt64) {
        rng = ClusterRNG(seed: seed)
        for i in 0..<n {
            var id = NodeID.random(using: &rng)
            while index[id] != nil { id = NodeID.random(using: &rng) }
            let node = SimNode(index: i, id: id, net: self)
            nodes.append(node)
            index[id] = i
        }
    }

    func wallMs(_ node: Int) -> UInt64 { wallBase + nowMs + (skew[node] ?? 0) }
    func node(_ id: NodeID) -> Int? { index[id] }
    subscript(i: Int) -> SimNode { nodes[i] }

    // MARK: Transport

    func enqueue(from: Int, to id: NodeID, _ payload: Payload) {
        let len = payload.length(for: .line)
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<len]), as: UTF8.self)
        guard let to = index[id] else { violations.append("send to unknown node \(id): \(text)"); return }
        let link = Link(from: from, to: to)
        guard up.contains(link) else { violations.append("send on down link \(link): \(text)"); return }
        guard text.utf8.last == 0x0A, text.utf8.dropLast().allSatisfy({ $0 != 0x0A }) else {
            violations.append("bad framing on \(link): \(text.debugDescription)")
            return
        }
        let line = String(text.dropLast())
        queues[link, default: []].append(line)
        sentLog[link, default: []].append(line)
    }

    /// Lines in flight on one direction of a link.
    func pending(_ from: Int, _ to: Int) -> [String] { queues[Link(from: from, to: to)] ?? [] }
    var inFlight: Int { queues.values.reduce(0) { $0 + $1.count } }

    // MARK: Links

    func linkUp(_ a: Int, _ b: Int) {
        up.insert(Link(from: a, to: b))
        up.insert(Link(from: b, to: a))
        nodes[a].cluster.linkUp(nodes[b].id, advertise: nodes[b].address, nowMs: nowMs)
        nodes[b].cluster.linkUp(nodes[a].id, advertise: nodes[a].address, nowMs: nowMs)
    }

    func linkDown(_ a: Int, _ b: Int) {
        guard up.contains(Link(from: a, to: b)) else { return }
        up.remove(Link(from: a, to: b))
        up.remove(Link(from: b, to: a))
        queues[Link(from: a, to: b)] = nil
        queues[Link(from: b, to: a)] = nil
        nodes[a].cluster.linkDown(nodes[b].id, nowMs: nowMs)
        nodes[b].cluster.linkDown(nodes[a].id, nowMs: nowMs)
    }

    func fullMesh() { for a in nodes.indices { for b in nodes.indices where a < b { linkUp(a, b) } } }
    func chain() { for a in nodes.indices.dropLast() { linkUp(a, a + 1) } }
    func ring() { chain(); if nodes.count > 2 { linkUp(nodes.count - 1, 0) } }
    func star() { for b in nodes.indices.dropFirst() { linkUp(0, b) } }
    /// A random connected graph: a random spanning tree plus some extra edges.
    func randomConnected(extra: Int) {
        for b in nodes.indices.dropFirst() { linkUp(Int.random(in: 0..<b, using: &rng), b) }
        for _ in 0..<extra {
            let a = Int.random(in: nodes.indices, using: &rng), b = Int.random(in: nodes.indices, using: &rng)
            if a != b && !up.contains(Link(from: a, to: b)) { linkUp(a, b) }
        }
    }
    /// Picks one of the named topologies by a number (for seeded sweeps).
    func topology(_ k: Int) -> String {
        switch k % 5 {
        case 0: fullMesh(); return "mesh"
        case 1: chain(); return "chain"
        case 2: ring(); return "ring"
        case 3: star(); return "star"
        default: randomConnected(extra: nodes.count / 2); return "random"
        }
    }

    // MARK: Scheduling

    /// Delivers the oldest line of one randomly chosen busy link. False when nothing can move.
    @discardableResult
    func step() -> Bool {
        let busy = queues.filter { !$0.value.isEmpty && up.contains($0.key) && !dead.contains($0.key.from) && !dead.contains($0.key.to) }
            .keys.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
        guard !busy.isEmpty else { return false }
        deliver(busy[Int.random(in: busy.indices, using: &rng)])
        return true
    }

    /// Delivers the oldest line on one direction of a link (must be non-empty).
    func deliver(_ link: Link) {
        let line = queues[link]!.removeFirst()
        delivered += 1
        let to = nodes[link.to]
        do {
            var bytes = line
            try bytes.withUTF8 { try to.cluster.receive(bytes: UnsafeRawBufferPointer($0), from: nodes[link.from].id, nowMs: nowMs, wallMs: wallMs(link.to)) }
        } catch {
            // The runtime logs it and drops the link.
            refused.append((link, line, "\(error)"))
            linkDown(link.from, link.to)
        }
        endRequestedSessions()
    }

    func deliver(_ from: Int, _ to: Int) { deliver(Link(from: from, to: to)) }

    /// Delivers everything on one direction of a link.
    func drain(_ from: Int, _ to: Int) {
        while !(queues[Link(from: from, to: to)] ?? []).isEmpty { deliver(from, to) }
    }

    /// Delivers until nothing is in flight; records an issue if it never settles.
    func deliverAll(limit: Int = 200_000, sourceLocation: SourceLocation = #_sourceLocation) {
        var n = 0
        while step() {
            n += 1
            if n > limit {
                Issue.record("network did not settle after \(limit) deliveries", sourceLocation: sourceLocation)
                return
            }
        }
    }

    /// Advances the clock in `stepMs` steps, ticking every live node and delivering everything.
    func advance(_ ms: UInt64, stepMs: UInt64 = 250) {
        var left = ms
        while left > 0 {
            let d = min(stepMs, left)
            left -= d
            nowMs += d
            for n in nodes where !dead.contains(n.index) { n.cluster.tick(nowMs: nowMs) }
            deliverAll()
        }
    }

    /// Sessions whose end was requested are logged out after the call that requested it,
    /// as the runtime does (it marks the connection and closes it later).
    private func endRequestedSessions() {
        for s in sinks where s.endRequested && !s.loggedOut {
            s.loggedOut = true
            if let session = s.session { nodes[s.node].hub.logout(session) }
        }
    }

    // MARK: Sessions

    @discardableResult
    func login(_ node: Int, _ user: String, _ room: String) -> ClusterSink {
        let sink = ClusterSink(node: node, user: user, room: room)
        sinks.append(sink)
        let result = nodes[node].hub.login(username: ChatName(user, maxLength: Limits.maxUsernameLength)!,
                                           chatID: ChatName(room, maxLength: Limits.maxChatIDLength)!,
                                           framing: .line, sink: sink)
        if case .accepted(let s) = result { sink.session = s }
        return sink
    }

    func say(_ sink: ClusterSink, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let s = sink.session else { Issue.record("\(sink.user) has no session", sourceLocation: sourceLocation); return }
        _ = nodes[sink.node].hub.receive(.message(ArraySlice(Array(text.utf8))), from: s)
    }

    func logout(_ sink: ClusterSink) {
        sink.loggedOut = true
        if let s = sink.session { nodes[sink.node].hub.logout(s) }
    }

    /// Nodes whose hub holds a session for `key`.
    func holders(of key: String) -> [Int] { nodes.indices.filter { nodes[$0].hub.sessions[key] != nil } }

    func expectClean(_ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(violations.isEmpty, "\(context): \(violations.prefix(3))", sourceLocation: sourceLocation)
        #expect(refused.isEmpty, "\(context): refused \(refused.prefix(3).map { "\($0.link) \($0.line): \($0.error)" })",
                sourceLocation: sourceLocation)
    }
}
