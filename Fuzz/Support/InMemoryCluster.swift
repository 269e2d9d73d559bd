// The one in-memory cluster network: N real `Hub` + `Cluster` cores wired the way the
// runtime wires them (Node, PeerLink), one FIFO queue of lines per link direction, and a
// fake clock. No sockets, no threads, no randomness: who delivers what, and when, is up to
// the owner: the `cluster` fuzz target (Fuzz/cluster/FuzzNet.swift), the simulation tests
// (Tests/ChatCoreTests/ClusterTestNetwork.swift) and the claim model checker
// (Tests/ChatCoreTests/ClaimModel.swift).
//
// Compiled twice (CONTRIBUTING.md, "Where things go"): into every fuzz target, as part of
// its one module with ChatCore's sources (scripts/fuzz.sh), and by SwiftPM as the test
// helper target `InMemoryClusterSupport` (Package.swift), which defines IN_MEMORY_CLUSTER_MODULE.
// So it uses only ChatCore's public API and nothing of Fuzz/Support or of the tests.

#if IN_MEMORY_CLUSTER_MODULE
import ChatCore
#endif

public final class InMemoryCluster {
    /// One node: its hub, its cluster, and the transport the cluster writes to.
    public final class Node: ClusterTransport {
        public let index: Int
        public let id: NodeID
        public let address: String
        public let hub: Hub
        public let cluster: Cluster
        unowned let net: InMemoryCluster
        /// The addresses the core told the runtime to dial, by node (the runtime's dialers).
        public var learnedAddresses: [NodeID: String] = [:]

        init(index: Int, id: NodeID, limits: Limits, net: InMemoryCluster) {
            self.index = index
            self.id = id
            self.net = net
            address = "10.0.0.\(index + 1):8888"
            hub = Hub(limits: limits)
            cluster = Cluster(me: id, advertise: address, hub: hub)
            hub.cluster = cluster
            cluster.transport = self
            cluster.clock = { [unowned net] in (net.nowMs, net.wallMs(index)) }
        }

        public func send(_ line: Payload, to neighbor: NodeID) { net.enqueue(from: index, to: neighbor, line) }
        public func learned(node: NodeID, address: String) {
            learnedAddresses[node] = address
            net.learned?(self, node, address)
        }
    }

    /// A client connection: records every line it is sent, its settled login, and a request
    /// to end its session (which `endRequestedSessions` honours later, as the runtime does).
    open class Sink: SessionSink {
        public let node: Int
        public let user: String
        public let room: String
        public var lines: [String] = []
        public var session: Session?
        /// `loginFinished` calls: true for a session, false for nil.
        public var finished: [Bool] = []
        public var endRequested = false
        /// The connection is gone (logged out, abandoned, or its session ended).
        public var gone = false

        public init(node: Int, user: String, room: String) { self.node = node; self.user = user; self.room = room }

        open func enqueue(_ payload: Payload, length: Int) {
            lines.append(String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self))
        }
        open func loginFinished(_ s: Session?) {
            finished.append(s != nil)
            if let s { session = s }
        }
        open func endSession() { endRequested = true }

        public var got200: Bool { lines.contains("200\n") }
        public var got403: Bool { lines.contains("403\n") }
        public var settled: Bool { got200 || got403 }
        /// Lines after the login reply.
        public var chatLines: [String] { lines.filter { $0 != "200\n" && $0 != "403\n" } }
    }

    public private(set) var nodes: [Node] = []
    public let ids: [NodeID]
    public var n: Int { ids.count }
    /// Lines in flight, [from][to], oldest first.
    public var queues: [[[String]]]
    /// Link directions that are up, [from][to] (links go up and down both ways at once).
    public var up: [[Bool]]
    public var nowMs: UInt64 = 0
    public let wallBase: UInt64 = 1_700_000_000_000
    /// Per-node wall-clock skew in ms.
    public var skew: [UInt64]
    /// Every login made through `login`, in order.
    public private(set) var sinks: [Sink] = []

    /// A line no runtime could carry (to an unknown node, on a down link, badly framed, not
    /// UTF-8): what the owner makes of it. The line is dropped.
    public var fault: (String) -> Void = { _ in }
    /// A line the receiving node refused (`receive` threw): the runtime logs it and drops the
    /// link, which `deliver` does after this.
    public var refused: (_ from: Int, _ to: Int, _ line: String, _ error: any Error) -> Void = { _, _, _, _ in }
    /// Every line accepted for delivery.
    public var sent: ((_ from: Int, _ to: Int, _ line: String) -> Void)?
    /// A node told the runtime another node's address (after `learnedAddresses` has it).
    public var learned: ((_ node: Node, _ id: NodeID, _ address: String) -> Void)?

    /// Owners that keep a closure referring to themselves capture it `unowned`: the network is theirs.
    public init(ids: [NodeID], limits: Limits = Limits(), skew: [UInt64]? = nil) {
        self.ids = ids
        self.skew = skew ?? Array(repeating: 0, count: ids.count)
        queues = Array(repeating: Array(repeating: [], count: ids.count), count: ids.count)
        up = Array(repeating: Array(repeating: false, count: ids.count), count: ids.count)
        for i in ids.indices { nodes.append(Node(index: i, id: ids[i], limits: limits, net: self)) }
    }

    public func wallMs(_ node: Int) -> UInt64 { wallBase + nowMs + skew[node] }
    public func index(of id: NodeID) -> Int? { ids.firstIndex(of: id) }
    public subscript(i: Int) -> Node { nodes[i] }

    // MARK: Transport

    /// What a node's peer link writes: one `\n`-terminated UTF-8 line to a neighbor.
    public func enqueue(from: Int, to id: NodeID, _ payload: Payload) {
        let len = payload.length(for: .line)
        let bytes = UnsafeRawBufferPointer(rebasing: payload.bytes[0..<len])
        guard let to = index(of: id) else {
            return fault("node \(from) sent to \(id), which is not a node: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
        guard up[from][to] else {
            return fault("node \(from) sent on the down link \(from)->\(to): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
        guard bytes.last == 0x0A, !bytes.dropLast().contains(0x0A) else {
            return fault("bad framing on \(from)->\(to): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
        guard let line = String(validating: bytes.dropLast(), as: UTF8.self) else {
            return fault("a line that is not UTF-8 on \(from)->\(to): \(Array(bytes))")
        }
        queues[from][to].append(line)
        sent?(from, to, line)
    }

    public var inFlight: Int { queues.joined().reduce(0) { $0 + $1.count } }

    /// Hands the oldest line on a->b (which must have one) to b's cluster, as b's peer link
    /// would; a refused line drops the link. Returns the line.
    @discardableResult
    public func deliver(_ a: Int, _ b: Int) -> String {
        let line = queues[a][b].removeFirst()
        do {
            var bytes = line
            try bytes.withUTF8 { try nodes[b].cluster.receive(bytes: UnsafeRawBufferPointer($0), from: ids[a], nowMs: nowMs, wallMs: wallMs(b)) }
        } catch {
            refused(a, b, line, error)
            linkDown(a, b)
        }
        endRequestedSessions()
        return line
    }

    // MARK: Links

    /// The link a-b opens; a's cluster hears of it first.
    public func linkUp(_ a: Int, _ b: Int) {
        up[a][b] = true
        up[b][a] = true
        nodes[a].cluster.linkUp(ids[b], advertise: nodes[b].address, nowMs: nowMs)
        nodes[b].cluster.linkUp(ids[a], advertise: nodes[a].address, nowMs: nowMs)
    }

    /// The link a-b closes, with what was in flight on it. False if it was not up.
    /// `seenOnlyBy`: only that end notices (the other is left half-open, as across a pulled
    /// cable, and learns of it only by the peer timeout).
    @discardableResult
    public func linkDown(_ a: Int, _ b: Int, seenOnlyBy: Int? = nil) -> Bool {
        guard a != b, up[a][b] else { return false }
        up[a][b] = false
        up[b][a] = false
        queues[a][b].removeAll()
        queues[b][a].removeAll()
        if seenOnlyBy != b { nodes[a].cluster.linkDown(ids[b], nowMs: nowMs) }
        if seenOnlyBy != a { nodes[b].cluster.linkDown(ids[a], nowMs: nowMs) }
        return true
    }

    // MARK: Sessions

    /// Logs `sink` in on its node; the caller checks the answer.
    public func login(_ sink: Sink, username: ChatName, chatID: ChatName) -> Hub.LoginResult {
        sinks.append(sink)
        let result = nodes[sink.node].hub.login(username: username, chatID: chatID, framing: .line, sink: sink)
        if case .accepted(let s) = result { sink.session = s }
        return result
    }

    /// Sessions whose end was requested are logged out after the call that requested it, as
    /// the runtime does (it marks the connection and closes it later).
    public func endRequestedSessions() {
        for s in sinks where s.endRequested && !s.gone {
            s.gone = true
            if let session = s.session { nodes[s.node].hub.logout(session) }
        }
    }
}
