import CUV
import ChatCore

extension Node {
    /// The node's view of the cluster (docs/operations.md). Room names and member counts
    /// only when `full` (the caller proved the secret, or the cluster has none).
    func statusReport(full: Bool) -> JSON {
        let now = loop.nowMs
        let hub = self.hub
        var clusterSessions = hub.sessions.count
        for n in cluster.nodes.values { clusterSessions += n.sessions }
        var linkList: [JSON] = []
        for (id, link) in links.sorted(by: { $0.key < $1.key }) {
            linkList.append(.object([
                ("peer", .string(id.text)),
                ("address", .string(link.address)),
                ("direction", .string(link.dialer == nil ? "in" : "out")),
                ("state", .string("up")),
                ("last_heard_ms_ago", .int(Int(now - min(now, link.lastHeardMs)))),
                ("queue_bytes", .int(link.conn.queuedBytes)),
            ]))
        }
        // Addresses kept dialed that are not up (this node's own address, listed among the
        // peers as in a Kubernetes StatefulSet, is never dialed and not shown).
        for d in dialers.values.sorted(by: { $0.address < $1.address })
        where d.address != cluster.advertise && (d.node.map({ links[$0] == nil }) ?? true) {
            linkList.append(.object([
                ("peer", d.node.map { .string($0.text) } ?? .null),
                ("address", .string(d.address)),
                ("direction", .string("out")),
                ("state", .string(d.link == nil ? "down" : "connecting")),
            ]))
        }
        var nodeList: [JSON] = [.object([
            ("id", .string(cluster.me.text)), ("advertise", .string(cluster.advertise)), ("self", .bool(true)),
            ("alive", .bool(true)), ("sessions", .int(hub.sessions.count)),
            ("neighbors", .array(cluster.neighbors.sorted().map { .string($0.text) })),
        ])]
        for (id, n) in cluster.nodes.sorted(by: { $0.key < $1.key }) {
            nodeList.append(.object([
                ("id", .string(id.text)), ("advertise", .string(n.advertise)), ("self", .bool(false)),
                ("alive", .bool(true)), ("sessions", .int(n.sessions)),
                ("last_heard_ms_ago", .int(Int(now - min(now, n.lastHeardMs)))),
                ("neighbors", .array(n.neighbors.sorted().map { .string($0.text) })),
            ]))
        }
        let s = hub.stats, r = loop.stats
        var report: [(String, JSON)] = [
            ("node", .object([
                ("id", .string(cluster.me.text)), ("listen", .string(listeningAddress)),
                ("advertise", .string(cluster.advertise)), ("uptime_ms", .int(Int(now - startedMs))),
                ("secret", .bool(secret != nil)),
            ])),
            ("totals", .object([
                ("connections", .int(connections.count)), ("sessions", .int(hub.sessions.count)),
                ("web_sessions", .int(webSessions)),
                ("rooms", .int(hub.rooms.count)), ("cluster_nodes", .int(cluster.nodes.count + 1)),
                ("cluster_sessions", .int(clusterSessions)),
                ("messages_in", .int(s.messagesIn)), ("messages_from_peers", .int(s.messagesFromPeers)),
                ("deliveries", .int(s.deliveries)), ("bytes_in", .int(r.bytesIn)), ("bytes_out", .int(r.bytesOut)),
            ])),
            ("links", .array(linkList)),
            ("nodes", .array(nodeList)),
        ]
        if full {
            var rooms: [String: [(String, Int)]] = [:]
            for (key, room) in hub.rooms { rooms[key, default: []].append((cluster.me.text, room.members.count)) }
            for (id, n) in cluster.nodes {
                for (room, count) in n.roomMembers where count > 0 { rooms[room, default: []].append((id.text, count)) }
            }
            report.append(("rooms", .array(rooms.sorted(by: { $0.key < $1.key }).map { room, perNode in
                .object([
                    ("room", .string(room)),
                    ("members", .int(perNode.reduce(0) { $0 + $1.1 })),
                    ("per_node", .object(perNode.sorted(by: { $0.0 < $1.0 }).map { ($0.0, .int($0.1)) })),
                ])
            })))
        }
        return .object(report)
    }
}
