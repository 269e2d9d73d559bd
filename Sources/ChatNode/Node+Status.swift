import CUV
import ChatCore

extension Node {
    /// The node's view of the cluster (docs/operations.md): what only the runtime knows
    /// (links, dialers, sockets), handed to the core's `Cluster.statusReport`.
    func statusReport(full: Bool) -> JSON {
        var s = StatusSnapshot()
        s.listen = listeningAddress
        s.uptimeMs = loop.nowMs - min(loop.nowMs, startedMs)
        s.secret = secret != nil
        s.connections = connections.count
        s.webSessions = webSessions
        s.unauthenticated = unauthenticatedCount
        s.bytesIn = loop.stats.bytesIn
        s.bytesOut = loop.stats.bytesOut
        s.learnedAddresses = dialers.values.count(where: { $0.learned })
        s.links = links.map { id, link in
            .init(peer: id, address: link.address, dialed: link.dialer != nil, lastHeardMs: link.lastHeardMs,
                  queueBytes: link.conn.queuedBytes)
        }
        // Addresses kept dialed that are not up (this node's own address, listed among the
        // peers as in a Kubernetes StatefulSet, is never dialed and not shown).
        s.dialing = dialers.values
            .filter { d in d.address != cluster.advertise && (d.node.map({ links[$0] == nil }) ?? true) }
            .map { .init(peer: $0.node, address: $0.address, connecting: $0.link != nil) }
        return cluster.statusReport(s, nowMs: loop.nowMs, full: full)
    }
}
