// The in-memory network of the `cluster` fuzz target: N Hub+Cluster nodes wired the way
// the runtime wires them (as Tests/ChatCoreTests/ClusterTestNetwork.swift does), FIFO
// links per direction, a fake clock, and sessions that record what they were sent.
// Everything here is driven by the program in ClusterFuzz.swift; nothing is random.

#if canImport(Glibc)
import Glibc
#endif

/// `FUZZ_TRACE=2`: every line delivered, every login's answer.
let traceLines: Bool = getenv("FUZZ_TRACE").map { String(cString: $0) == "2" } ?? false

/// A client connection of a fuzzed node.
final class FuzzSink: SessionSink {
    let serial: Int
    let node: Int
    let nameKey: String
    let display: String
    let room: String
    var lines: [String] = []
    var session: Session?
    var finished: [Bool] = []
    var endRequested = false
    /// The connection is gone (the harness logged the session out or abandoned the login).
    var gone = false
    /// Messages this session sent.
    var said = 0

    init(serial: Int, node: Int, nameKey: String, display: String, room: String) {
        self.serial = serial
        self.node = node
        self.nameKey = nameKey
        self.display = display
        self.room = room
    }

    func enqueue(_ payload: Payload, length: Int) {
        require(length >= 0 && length <= payload.count, "enqueue length \(length) of a \(payload.count)-byte payload")
        lines.append(String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self))
    }
    func loginFinished(_ s: Session?) {
        if traceLines { fputs("    login \(display)@\(node) settled: \(s != nil ? 200 : 403)\n", stderr) }
        require(finished.isEmpty, "loginFinished called twice for \(display)@\(node)")
        require(!gone, "loginFinished after the login was abandoned")
        finished.append(s != nil)
        if let s { session = s }
    }
    func endSession() {
        if traceLines { fputs("    session \(display)@\(node) must end\n", stderr) }
        endRequested = true
    }

    var got200: Bool { lines.contains("200\n") }
    var got403: Bool { lines.contains("403\n") }
    var settled: Bool { got200 || got403 }
    /// A login still waiting for the cluster.
    var pending: Bool { !gone && !settled }
}

final class FuzzNode: ClusterTransport {
    let index: Int
    let id: NodeID
    let address: String
    let hub: Hub
    let cluster: Cluster
    unowned let net: FuzzNet

    init(index: Int, id: NodeID, net: FuzzNet) {
        self.index = index
        self.id = id
        self.net = net
        address = "10.0.0.\(index + 1):8888"
        var limits = Limits()
        limits.rateLimit = 0
        hub = Hub(limits: limits)
        cluster = Cluster(me: id, advertise: address, hub: hub)
        hub.cluster = cluster
        cluster.transport = self
        cluster.clock = { [unowned net] in (net.nowMs, net.wallMs(index)) }
    }

    func send(_ line: Payload, to neighbor: NodeID) { net.enqueue(from: index, to: neighbor, line) }
    /// Addresses the core told the runtime to dial, by node: the runtime keeps one dialer per
    /// entry, so the core must only name nodes it tracks or links to (at most `Limits.maxClusterNodes`
    /// plus its links).
    var learnedAddresses: [NodeID: String] = [:]
    func learned(node: NodeID, address: String) {
        require(cluster.nodes[node] != nil || cluster.neighbors.contains(node),
                "node \(index) learned an address for \(node), which it neither tracks nor links to")
        require(HostPort(address) != nil, "node \(index) learned an address that is not host:port: \(address.debugDescription)")
        learnedAddresses[node] = address
        // What the runtime's dialer list holds: the learned nodes still tracked.
        if learnedAddresses.count > Limits.maxClusterNodes {
            learnedAddresses = learnedAddresses.filter { cluster.nodes[$0.key] != nil || cluster.neighbors.contains($0.key) }
        }
        // A direct link is tracked even when maxNodes others already are (Cluster.linkUp).
        require(learnedAddresses.count <= Limits.maxClusterNodes + cluster.neighbors.count,
                "node \(index) has \(learnedAddresses.count) learned addresses (\(cluster.neighbors.count) links)")
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

final class FuzzNet {
    let n: Int
    private(set) var nodes: [FuzzNode] = []
    let ids: [NodeID]
    /// Lines in flight, [from][to], oldest first.
    var queues: [[[String]]]
    var up: [[Bool]]
    /// When node `to` last read anything on its link from `from`, [to][from]: the runtime
    /// closes a link that carries nothing for the peer timeout (Node.tick, PeerLink.lastHeardMs).
    var lastRead: [[UInt64]]
    var nowMs: UInt64 = 0
    /// Nodes that stopped (gracefully or killed): no links, no ticks, no logins.
    var dead: Set<Int> = []
    var live: [Int] { (0..<n).filter { !dead.contains($0) } }
    let wallBase: UInt64 = 1_700_000_000_000
    var skew: [UInt64]
    private(set) var sinks: [FuzzSink] = []
    var deliveries = 0
    /// Deliveries allowed in one `deliverAll`: far more than any program's traffic needs.
    static let settleLimit = 200_000

    init(ids: [NodeID], skew: [UInt64]) {
        n = ids.count
        self.ids = ids
        self.skew = skew
        queues = Array(repeating: Array(repeating: [], count: ids.count), count: ids.count)
        up = Array(repeating: Array(repeating: false, count: ids.count), count: ids.count)
        lastRead = Array(repeating: Array(repeating: 0, count: ids.count), count: ids.count)
        for i in ids.indices { nodes.append(FuzzNode(index: i, id: ids[i], net: self)) }
    }

    func wallMs(_ node: Int) -> UInt64 { wallBase + nowMs + skew[node] }
    func index(of id: NodeID) -> Int? { ids.firstIndex(of: id) }
    subscript(i: Int) -> FuzzNode { nodes[i] }

    // MARK: Transport

    func enqueue(from: Int, to id: NodeID, _ payload: Payload) {
        guard let to = index(of: id) else { fuzzFail("node \(from) sent to \(id), which is not a node it links to") }
        require(up[from][to], "node \(from) sent on the down link \(from)->\(to)")
        let len = payload.length(for: .line)
        let bytes = Array(UnsafeRawBufferPointer(rebasing: payload.bytes[0..<len]))
        require(bytes.last == 0x0A && !bytes.dropLast().contains(0x0A), "bad framing on \(from)->\(to): \(hex(bytes))")
        guard let line = String(validating: bytes.dropLast(), as: UTF8.self) else { fuzzFail("a line that is not UTF-8 on \(from)->\(to)") }
        queues[from][to].append(line)
    }

    var inFlight: Int { queues.joined().reduce(0) { $0 + $1.count } }

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
        let line = queues[a][b].removeFirst()
        deliveries += 1
        lastRead[b][a] = nowMs
        if traceLines { fputs("    [t=\(nowMs)] \(a)->\(b) \(line)\n", stderr) }
        do {
            var bytes = line
            try bytes.withUTF8 { try nodes[b].cluster.receive(bytes: UnsafeRawBufferPointer($0), from: ids[a], nowMs: nowMs, wallMs: wallMs(b)) }
        } catch {
            fuzzFail("node \(b) refused a line node \(a) sent: \(line.debugDescription): \(error)")
        }
        endRequestedSessions()
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
        up[a][b] = true
        up[b][a] = true
        lastRead[a][b] = nowMs
        lastRead[b][a] = nowMs
        let (x, y) = aFirst ? (a, b) : (b, a)
        nodes[x].cluster.linkUp(ids[y], advertise: nodes[y].address, nowMs: nowMs)
        nodes[y].cluster.linkUp(ids[x], advertise: nodes[x].address, nowMs: nowMs)
        endRequestedSessions()
    }

    func linkDown(_ a: Int, _ b: Int) {
        guard a != b, up[a][b] else { return }
        up[a][b] = false
        up[b][a] = false
        queues[a][b].removeAll()
        queues[b][a].removeAll()
        nodes[a].cluster.linkDown(ids[b], nowMs: nowMs)
        nodes[b].cluster.linkDown(ids[a], nowMs: nowMs)
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
    func endRequestedSessions() {
        for s in sinks where s.endRequested && !s.gone {
            s.gone = true
            if let session = s.session { nodes[s.node].hub.logout(session) }
        }
    }

    @discardableResult
    func login(_ node: Int, display: String, room: String) -> FuzzSink {
        let user = ChatName(display, maxLength: Limits.maxUsernameLength)!
        let chat = ChatName(room, maxLength: Limits.maxChatIDLength)!
        let sink = FuzzSink(serial: sinks.count, node: node, nameKey: user.key, display: display, room: chat.key)
        sinks.append(sink)
        switch nodes[node].hub.login(username: user, chatID: chat, framing: .line, sink: sink) {
        case .accepted(let s):
            sink.session = s
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
