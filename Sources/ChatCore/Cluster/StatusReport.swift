/// What the runtime knows that the core does not (sockets, links, dialers), for the status
/// report (docs/operations.md).
public struct StatusSnapshot: Sendable {
    public struct Link: Sendable {
        public var peer: NodeID
        public var address: String
        public var dialed: Bool
        public var lastHeardMs: UInt64
        public var queueBytes: Int
        public init(peer: NodeID, address: String, dialed: Bool, lastHeardMs: UInt64, queueBytes: Int) {
            self.peer = peer; self.address = address; self.dialed = dialed; self.lastHeardMs = lastHeardMs; self.queueBytes = queueBytes
        }
    }
    /// An address kept dialed that is not up.
    public struct Dialing: Sendable {
        public var peer: NodeID?
        public var address: String
        public var connecting: Bool
        public init(peer: NodeID?, address: String, connecting: Bool) { self.peer = peer; self.address = address; self.connecting = connecting }
    }
    public var listen = ""
    public var uptimeMs: UInt64 = 0
    public var secret = false
    public var connections = 0
    /// Logged-in WebSocket (browser) sessions, counted in the sessions too.
    public var webSessions = 0
    public var unauthenticated = 0
    public var bytesIn = 0
    public var bytesOut = 0
    public var learnedAddresses = 0
    public var links: [Link] = []
    public var dialing: [Dialing] = []
    public init() {}
}

extension Cluster {
    /// The node's view of the cluster as one JSON object (docs/operations.md). Room names
    /// and member counts only when `full` (the caller proved the secret, or the cluster has
    /// none). Everything a peer reported is bounded where it was parsed; sums saturate.
    public func statusReport(_ s: StatusSnapshot, nowMs now: UInt64, full: Bool) -> JSON {
        func ago(_ ms: UInt64) -> JSON { .int(Int(clamping: now - min(now, ms))) }
        var clusterSessions = hub.sessions.count
        for n in nodes.values { clusterSessions = clusterSessions.saturatingAdd(n.sessions) }
        var linkList: [JSON] = s.links.sorted { $0.peer < $1.peer }.map { l in
            .object([
                ("peer", .string(l.peer.text)), ("address", .string(l.address)),
                ("direction", .string(l.dialed ? "out" : "in")), ("state", .string("up")),
                ("last_heard_ms_ago", ago(l.lastHeardMs)), ("queue_bytes", .int(l.queueBytes)),
            ])
        }
        for d in s.dialing.sorted(by: { $0.address < $1.address }) {
            linkList.append(.object([
                ("peer", d.peer.map { .string($0.text) } ?? .null), ("address", .string(d.address)),
                ("direction", .string("out")), ("state", .string(d.connecting ? "connecting" : "down")),
            ]))
        }
        var nodeList: [JSON] = [.object([
            ("id", .string(me.text)), ("advertise", .string(advertise)), ("self", .bool(true)),
            ("alive", .bool(true)), ("sessions", .int(hub.sessions.count)),
            ("neighbors", .array(neighbors.sorted().map { .string($0.text) })),
        ])]
        for (id, n) in nodes.sorted(by: { $0.key < $1.key }) {
            nodeList.append(.object([
                ("id", .string(id.text)), ("advertise", .string(n.advertise)), ("self", .bool(false)),
                ("alive", .bool(true)), ("sessions", .int(n.sessions)),
                ("last_heard_ms_ago", ago(n.lastHeardMs)),
                ("neighbors", .array(n.neighbors.sorted().map { .string($0.text) })),
            ]))
        }
        let st = hub.stats
        var report: [(String, JSON)] = [
            ("node", .object([
                ("id", .string(me.text)), ("listen", .string(s.listen)), ("advertise", .string(advertise)),
                ("uptime_ms", .int(Int(clamping: s.uptimeMs))), ("secret", .bool(s.secret)),
            ])),
            ("totals", .object([
                ("connections", .int(s.connections)), ("sessions", .int(hub.sessions.count)),
                ("web_sessions", .int(s.webSessions)),
                ("rooms", .int(hub.rooms.count)), ("cluster_nodes", .int(nodes.count + 1)),
                ("cluster_sessions", .int(clusterSessions)),
                ("messages_in", .int(st.messagesIn)), ("messages_from_peers", .int(st.messagesFromPeers)),
                ("deliveries", .int(st.deliveries)), ("bytes_in", .int(s.bytesIn)), ("bytes_out", .int(s.bytesOut)),
                // What strangers and peers can make a node hold: each bounded (docs/security.md).
                ("unauthenticated", .int(s.unauthenticated)), ("cluster_streams", .int(streamCount)),
                ("room_sequences", .int(roomSequenceCount)), ("learned_addresses", .int(s.learnedAddresses)),
            ])),
            ("links", .array(linkList)),
            ("nodes", .array(nodeList)),
        ]
        if full {
            var rooms: [String: [(String, Int)]] = [:]
            for (key, room) in hub.rooms { rooms[key, default: []].append((me.text, room.members.count)) }
            for (id, n) in nodes {
                for (room, count) in n.roomMembers where count > 0 { rooms[room, default: []].append((id.text, count)) }
            }
            report.append(("rooms", .array(rooms.sorted(by: { $0.key < $1.key }).map { room, perNode in
                .object([
                    ("room", .string(room)),
                    ("members", .int(perNode.reduce(0) { $0.saturatingAdd($1.1) })),
                    ("per_node", .object(perNode.sorted(by: { $0.0 < $1.0 }).map { ($0.0, .int($0.1)) })),
                ])
            })))
        }
        return .object(report)
    }
}
