// The in-memory network of the `cluster` fuzz target: the shared `InMemoryCluster`
// (Fuzz/Support/InMemoryCluster.swift, also the simulation tests' network) with the
// fuzzer's checks, dead nodes, peer timeouts and delivery order, and sessions that record
// what they were sent. Everything here is driven by the program in ClusterFuzz.swift;
// nothing is random.

#if canImport(Glibc)
import Glibc
#endif

/// `FUZZ_TRACE=2`: every line delivered, every login's answer.
let traceLines: Bool = getenv("FUZZ_TRACE").map { String(cString: $0) == "2" } ?? false

/// A client connection of a fuzzed node: the shared recording sink, plus the harness's
/// serial number and its checks of every call.
final class FuzzSink: InMemoryCluster.Sink {
    let serial: Int
    let nameKey: String
    var display: String { user }
    /// Messages this session sent.
    var said = 0

    init(serial: Int, node: Int, nameKey: String, display: String, room: String) {
        self.serial = serial
        self.nameKey = nameKey
        super.init(node: node, user: display, room: room)
    }

    override func enqueue(_ payload: Payload, length: Int) {
        require(length >= 0 && length <= payload.count, "enqueue length \(length) of a \(payload.count)-byte payload")
        super.enqueue(payload, length: length)
    }
    override func loginFinished(_ s: Session?) {
        if traceLines { fputs("    login \(display)@\(node) settled: \(s != nil ? 200 : 403)\n", stderr) }
        require(finished.isEmpty, "loginFinished called twice for \(display)@\(node)")
        require(!gone, "loginFinished after the login was abandoned")
        super.loginFinished(s)
    }
    override func endSession() {
        if traceLines { fputs("    session \(display)@\(node) must end\n", stderr) }
        super.endSession()
    }

    /// A login still waiting for the cluster.
    var pending: Bool { !gone && !settled }
}

typealias FuzzNode = InMemoryCluster.Node

extension FuzzNet {
    /// Addresses the core told the runtime to dial, by node: the runtime keeps one dialer per
    /// entry, so the core must only name nodes it tracks or links to (at most `Limits.maxClusterNodes`
    /// plus its links).
    static func checkLearned(_ node: FuzzNode, _ id: NodeID, _ address: String) {
        let cluster = node.cluster, index = node.index
        require(cluster.nodes[id] != nil || cluster.neighbors.contains(id),
                "node \(index) learned an address for \(id), which it neither tracks nor links to")
        require(HostPort(address) != nil, "node \(index) learned an address that is not host:port: \(address.debugDescription)")
        // What the runtime's dialer list holds: the learned nodes still tracked.
        if node.learnedAddresses.count > Limits.maxClusterNodes {
            node.learnedAddresses = node.learnedAddresses.filter { cluster.nodes[$0.key] != nil || cluster.neighbors.contains($0.key) }
        }
        // A direct link is tracked even when maxNodes others already are (Cluster.linkUp).
        require(node.learnedAddresses.count <= Limits.maxClusterNodes + cluster.neighbors.count,
                "node \(index) has \(node.learnedAddresses.count) learned addresses (\(cluster.neighbors.count) links)")
    }
}

/// SplitMix64, seeded by the fuzzer: delivery orders.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The fuzz target's network: the shared `InMemoryCluster`, with fuzzFail on anything a
/// runtime could not do, dead nodes, the peer timeout's link closes, and the fuzzer's
/// delivery order.
final class FuzzNet {
    let net: InMemoryCluster
    var n: Int { net.n }
    var nodes: [FuzzNode] { net.nodes }
    var ids: [NodeID] { net.ids }
    var queues: [[[String]]] { net.queues }
    var up: [[Bool]] { net.up }
    var nowMs: UInt64 { get { net.nowMs } set { net.nowMs = newValue } }
    var skew: [UInt64] { net.skew }
    /// `net.sinks`, typed.
    private(set) var sinks: [FuzzSink] = []
    /// When node `to` last read anything on its link from `from`, [to][from]: the runtime
    /// closes a link that carries nothing for the peer timeout (Node.tick, PeerLink.lastHeardMs).
    var lastRead: [[UInt64]]
    /// Nodes that stopped (gracefully or killed): no links, no ticks, no logins.
    var dead: Set<Int> = []
    var live: [Int] { (0..<n).filter { !dead.contains($0) } }
    var deliveries = 0
    /// Deliveries allowed in one `deliverAll`: far more than any program's traffic needs.
    static let settleLimit = 200_000

    init(ids: [NodeID], skew: [UInt64]) {
        var limits = Limits()
        limits.rateLimit = 0
        net = InMemoryCluster(ids: ids, limits: limits, skew: skew)
        lastRead = Array(repeating: Array(repeating: 0, count: ids.count), count: ids.count)
        net.fault = { fuzzFail($0) }
        net.refused = { a, b, line, error in fuzzFail("node \(b) refused a line node \(a) sent: \(line.debugDescription): \(error)") }
        net.learned = { FuzzNet.checkLearned($0, $1, $2) }
    }

    func wallMs(_ node: Int) -> UInt64 { net.wallMs(node) }
    func index(of id: NodeID) -> Int? { net.index(of: id) }
    subscript(i: Int) -> FuzzNode { net[i] }

    // MARK: Transport

    var inFlight: Int { net.inFlight }

    func busyLinks(within set: Set<Int>? = nil) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        for a in 0..<n { for b in 0..<n where !queues[a][b].isEmpty && up[a][b] {
            if let set, !(set.contains(a) && set.contains(b)) { continue }
            out.append((a, b))
        } }
        return out
    }

    /// Delivers the oldest line on a->b. A line a node sent is never refused by another.
    func deliver(_ a: Int, _ b: Int) {
        deliveries += 1
        lastRead[b][a] = nowMs
        if traceLines { fputs("    [t=\(nowMs)] \(a)->\(b) \(queues[a][b][0])\n", stderr) }
        net.deliver(a, b)
    }

    func deliverAll(_ rng: inout SplitMix, within set: Set<Int>? = nil) {
        var count = 0
        while true {
            let busy = busyLinks(within: set)
            if busy.isEmpty { return }
            let (a, b) = busy[rng.below(busy.count)]
            deliver(a, b)
            count += 1
            require(count <= FuzzNet.settleLimit, "the network did not settle after \(count) deliveries (\(inFlight) in flight)")
        }
    }

    // MARK: Links

    func linkUp(_ a: Int, _ b: Int, aFirst: Bool) {
        guard a != b, !up[a][b], !dead.contains(a), !dead.contains(b) else { return }
        lastRead[a][b] = nowMs
        lastRead[b][a] = nowMs
        if aFirst { net.linkUp(a, b) } else { net.linkUp(b, a) }
        endRequestedSessions()
    }

    func linkDown(_ a: Int, _ b: Int) {
        guard net.linkDown(a, b) else { return }
        endRequestedSessions()
    }

    /// Connected components of the link graph.
    func components() -> [Set<Int>] {
        var seen = dead
        var out: [Set<Int>] = []
        for s in 0..<n where !seen.contains(s) {
            var comp: Set<Int> = [s]
            var stack = [s]
            while let x = stack.popLast() {
                for y in 0..<n where up[x][y] && !comp.contains(y) { comp.insert(y); stack.append(y) }
            }
            seen.formUnion(comp)
            out.append(comp)
        }
        return out
    }

    // MARK: Time

    func tick(only: Int? = nil) {
        for node in nodes where (only == nil || only == node.index) && !dead.contains(node.index) {
            node.cluster.tick(nowMs: nowMs)
            // As Node.tick: a link silent for longer than the peer timeout is closed.
            let b = node.index
            for a in 0..<n where up[a][b] && nowMs > lastRead[b][a] + node.cluster.peerTimeoutMs { linkDown(a, b) }
        }
        endRequestedSessions()
    }

    /// The node stops: with `bye`, as on SIGTERM (its BYE and everything queued before it
    /// reach its neighbors, then the links close); without, as on kill -9 (links just drop).
    /// Its sessions vanish with it.
    func stop(_ k: Int, bye: Bool) {
        guard !dead.contains(k) else { return }
        if bye {
            nodes[k].cluster.leave()
            for b in 0..<n where up[k][b] { while !queues[k][b].isEmpty { deliver(k, b) } }
        }
        for b in 0..<n { linkDown(k, b) }
        dead.insert(k)
        for s in sinks where s.node == k { s.gone = true }
    }

    // MARK: Sessions

    /// The runtime closes a connection whose session must end after the call that asked.
    func endRequestedSessions() { net.endRequestedSessions() }

    @discardableResult
    func login(_ node: Int, display: String, room: String) -> FuzzSink {
        let user = ChatName(display, maxLength: Limits.maxUsernameLength)!
        let chat = ChatName(room, maxLength: Limits.maxChatIDLength)!
        let sink = FuzzSink(serial: sinks.count, node: node, nameKey: user.key, display: display, room: chat.key)
        sinks.append(sink)
        switch net.login(sink, username: user, chatID: chat) {
        case .accepted:
            require(sink.lines == ["200\n"], "accepted without 200: \(sink.lines)")
        case .nameTaken:
            require(sink.lines == ["403\n"], "refused without 403: \(sink.lines)")
        case .pending:
            require(sink.lines.isEmpty, "a pending login was answered: \(sink.lines)")
        }
        endRequestedSessions()
        if traceLines { fputs("    login \(display)@\(node) -> \(sink.lines)\n", stderr) }
        return sink
    }

    /// The connection closes: the session is logged out, or the pending login abandoned.
    func disconnect(_ sink: FuzzSink) {
        guard !sink.gone else { return }
        sink.gone = true
        if let s = sink.session {
            nodes[sink.node].hub.logout(s)
        } else if !sink.settled {
            nodes[sink.node].hub.abandonLogin(username: ChatName(sink.display, maxLength: 32)!, sink: sink)
        }
        endRequestedSessions()
    }

    func say(_ sink: FuzzSink) {
        guard let s = sink.session, !sink.gone else { return }
        let text = "#\(sink.serial).\(sink.said)"
        sink.said += 1
        let result = nodes[sink.node].hub.receive(.message(ArraySlice(Array(text.utf8))), from: s)
        require(result == .ok, "say: \(result)")
        endRequestedSessions()
    }
}
