import Testing
@testable import ChatCore
import TestSupport
import InMemoryClusterSupport

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

/// A session sink for cluster tests: the shared recording sink.
typealias ClusterSink = InMemoryCluster.Sink
typealias SimNode = InMemoryCluster.Node

/// The shared `InMemoryCluster` (Fuzz/Support/InMemoryCluster.swift) with a seeded scheduler,
/// hung nodes, and what went wrong recorded for the tests to expect.
final class SimNetwork {
    struct Link: Hashable, CustomStringConvertible {
        let from: Int
        let to: Int
        var description: String { "\(from)->\(to)" }
    }

    var rng: ClusterRNG
    let net: InMemoryCluster
    var nodes: [SimNode] { net.nodes }
    /// Nodes that are hung: nothing is delivered to or from them and they are not ticked.
    var dead: Set<Int> = []
    var nowMs: UInt64 { get { net.nowMs } set { net.nowMs = newValue } }
    /// Per-node wall-clock skew in ms.
    var skew: [UInt64] { get { net.skew } set { net.skew = newValue } }
    /// `receive` calls that threw (the runtime drops the link then), in order.
    private(set) var refused: [(link: Link, line: String, error: String)] = []
    /// Anything the cluster did that a runtime could not do (send on a down link, bad framing).
    private(set) var violations: [String] = []
    /// Every line sent, per link, for inspection.
    private(set) var sentLog: [Link: [String]] = [:]
    var sinks: [ClusterSink] { net.sinks }
    private(set) var delivered = 0

    init(nodes n: Int, seed: UInt64) {
        rng = ClusterRNG(seed: seed)
        var ids: [NodeID] = []
        for _ in 0..<n {
            var id = NodeID.random(using: &rng)
            while ids.contains(id) { id = NodeID.random(using: &rng) }
            ids.append(id)
        }
        net = InMemoryCluster(ids: ids)
        net.fault = { [unowned self] in self.violations.append($0) }
        net.refused = { [unowned self] a, b, line, error in self.refused.append((Link(from: a, to: b), line, "\(error)")) }
        net.sent = { [unowned self] a, b, line in self.sentLog[Link(from: a, to: b), default: []].append(line) }
    }

    func wallMs(_ node: Int) -> UInt64 { net.wallMs(node) }
    func node(_ id: NodeID) -> Int? { net.index(of: id) }
    subscript(i: Int) -> SimNode { net[i] }

    // MARK: Transport

    /// Lines in flight on one direction of a link.
    func pending(_ from: Int, _ to: Int) -> [String] { net.queues[from][to] }
    var inFlight: Int { net.inFlight }

    // MARK: Links

    func linkUp(_ a: Int, _ b: Int) { net.linkUp(a, b) }
    func linkDown(_ a: Int, _ b: Int, seenOnlyBy: Int? = nil) { net.linkDown(a, b, seenOnlyBy: seenOnlyBy) }
    private func isUp(_ a: Int, _ b: Int) -> Bool { net.up[a][b] }

    func fullMesh() { for a in nodes.indices { for b in nodes.indices where a < b { linkUp(a, b) } } }
    func chain() { for a in nodes.indices.dropLast() { linkUp(a, a + 1) } }
    func ring() { chain(); if nodes.count > 2 { linkUp(nodes.count - 1, 0) } }
    func star() { for b in nodes.indices.dropFirst() { linkUp(0, b) } }
    /// A random connected graph: a random spanning tree plus some extra edges.
    func randomConnected(extra: Int) {
        for b in nodes.indices.dropFirst() { linkUp(Int.random(in: 0..<b, using: &rng), b) }
        for _ in 0..<extra {
            let a = Int.random(in: nodes.indices, using: &rng), b = Int.random(in: nodes.indices, using: &rng)
            if a != b && !isUp(a, b) { linkUp(a, b) }
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
        var busy: [Link] = []
        for a in nodes.indices where !dead.contains(a) {
            for b in nodes.indices where !dead.contains(b) && isUp(a, b) && !net.queues[a][b].isEmpty { busy.append(Link(from: a, to: b)) }
        }
        guard !busy.isEmpty else { return false }
        deliver(busy[Int.random(in: busy.indices, using: &rng)])
        return true
    }

    /// Delivers the oldest line on one direction of a link (must be non-empty).
    func deliver(_ link: Link) {
        delivered += 1
        net.deliver(link.from, link.to)
    }

    func deliver(_ from: Int, _ to: Int) { deliver(Link(from: from, to: to)) }

    /// Delivers everything on one direction of a link.
    func drain(_ from: Int, _ to: Int) {
        while !net.queues[from][to].isEmpty { deliver(from, to) }
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

    // MARK: Sessions

    @discardableResult
    func login(_ node: Int, _ user: String, _ room: String) -> ClusterSink {
        let sink = ClusterSink(node: node, user: user, room: room)
        _ = net.login(sink, username: ChatName(user, maxLength: Limits.maxUsernameLength)!,
                      chatID: ChatName(room, maxLength: Limits.maxChatIDLength)!)
        return sink
    }

    func say(_ sink: ClusterSink, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let s = sink.session else { Issue.record("\(sink.user) has no session", sourceLocation: sourceLocation); return }
        _ = nodes[sink.node].hub.receive(.message(ArraySlice(Array(text.utf8))), from: s)
    }

    func logout(_ sink: ClusterSink) {
        sink.gone = true
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
