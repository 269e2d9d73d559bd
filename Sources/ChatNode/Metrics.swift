import CUV
import ChatCore
import Prometheus

/// The node's Prometheus metrics (`--metrics HOST:PORT`). The hot path only bumps plain
/// integers (Hub.Stats, RuntimeStats); this copies them into the registry when scraped.
/// Called on the node's loop thread only.
final class NodeMetrics {
    let registry = PrometheusCollectorRegistry()
    private var counters: [String: (Counter, Int)] = [:]
    private var gauges: [String: Gauge] = [:]
    let claimLatency: ValueHistogram

    init() {
        claimLatency = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "tcp_chat", metricName: "claim_latency", unitName: "seconds",
                                             helpText: "Time for the cluster to settle a username claim"),
            buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
    }

    /// Sets a counter to an absolute running total (counters only go up: the delta is added).
    private func counter(_ name: String, _ help: String, _ value: Int, labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        if counters[key] == nil {
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "tcp_chat", metricName: name, unitName: "total", helpText: help),
                labels: labels)
            counters[key] = (c, 0)
        }
        let (c, last) = counters[key]!
        if value > last { c.increment(by: Int64(value - last)) }
        counters[key] = (c, max(value, last))
    }

    private func gauge(_ name: String, _ help: String, _ value: Int, labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let g = gauges[key] ?? registry.makeGauge(
            descriptor: MetricNameDescriptor(namespace: "tcp_chat", metricName: name, unitName: "", helpText: help),
            labels: labels)
        gauges[key] = g
        g.set(Double(value))
    }

    /// A learned address was forgotten: its gauge goes too, so the label set stays bounded.
    func forgetAddress(_ address: String) {
        let key = "peer_link_up|address=\(address)"
        if let g = gauges.removeValue(forKey: key) { registry.unregisterGauge(g) }
    }

    /// The exposition text, with every value read from the node now.
    func render(_ node: Node) -> [UInt8] {
        let hub = node.hub.stats, rt = node.loop.stats
        gauge("connections", "Open TCP connections (clients, peers, status, metrics)", node.connections.count)
        gauge("sessions", "Logged-in sessions on this node", node.hub.sessions.count)
        gauge("web_sessions", "Logged-in WebSocket (browser) sessions on this node, counted in sessions too", node.webSessions)
        gauge("rooms", "Rooms with members on this node", node.hub.rooms.count)
        gauge("cluster_nodes", "Nodes this node believes alive, itself included", node.cluster.nodes.count + 1)
        gauge("peer_links", "Established peer links", node.links.count)
        for d in node.dialers.values {
            let up = d.node.map { node.links[$0] != nil } ?? false
            gauge("peer_link_up", "1 when the link to this configured or learned address is up", up ? 1 : 0,
                  labels: [("address", d.address)])
        }
        counter("messages_in", "Messages accepted from local members", hub.messagesIn)
        counter("messages_from_peers", "Messages received from other nodes", hub.messagesFromPeers)
        counter("messages_out", "Message copies delivered to local members", hub.deliveries)
        counter("bytes_in", "Bytes read from sockets", rt.bytesIn)
        counter("bytes_out", "Bytes handed to sockets", rt.bytesOut)
        counter("accepted", "Connections accepted", rt.accepted)
        counter("accept_errors", "Accept failures (e.g. out of file descriptors)", rt.acceptErrors)
        counter("logins", "Logins granted", hub.logins)
        counter("logins_refused", "Logins refused with 403", hub.loginsRefused)
        counter("drops", "Things dropped, by reason", rt.slowConsumerDrops, labels: [("reason", "slow_consumer")])
        counter("drops", "Things dropped, by reason", rt.memoryCapDrops, labels: [("reason", "memory_cap")])
        gauge("client_backlog_bytes", "Unsent bytes of all clients together (bounded by --max-total-queue-bytes)", node.loop.clientBacklog)
        counter("drops", "Things dropped, by reason", rt.rateLimitPauses, labels: [("reason", "rate_limit")])
        counter("drops", "Things dropped, by reason", hub.refused, labels: [("reason", "bad_input")])
        counter("drops", "Things dropped, by reason", rt.handshakeFailures + rt.handshakeTimeouts, labels: [("reason", "bad_handshake")])
        counter("drops", "Things dropped, by reason", rt.peerProtocolErrors, labels: [("reason", "peer_protocol_error")])
        counter("drops", "Things dropped, by reason", rt.pendingLimitRefusals, labels: [("reason", "pending_limit")])
        counter("drops", "Things dropped, by reason", rt.originsRefused, labels: [("reason", "origin_limit")])
        gauge("unauthenticated_connections", "Connections not yet logged in or authenticated", node.unauthenticatedCount)
        counter("drops", "Things dropped, by reason", hub.kicked, labels: [("reason", "name_lost_in_merge")])
        if let tls = node.tls {
            // Alert well before this reaches 0 (docs/operations.md); SIGHUP after renewing.
            gauge("tls_certificate_expiry_seconds", "Seconds until the node's TLS certificate expires (negative: expired)",
                  tls.secondsUntilExpiry)
            counter("tls_handshake_failures", "TLS handshakes that failed (bad or hostile input, unverified peers)",
                    rt.tlsHandshakeFailures)
            counter("tls_reloads", "SIGHUP certificate reloads, by outcome", rt.tlsReloads, labels: [("outcome", "ok")])
            counter("tls_reloads", "SIGHUP certificate reloads, by outcome", rt.tlsReloadFailures, labels: [("outcome", "failed")])
        }
        return registry.emitToBuffer()
    }
}

/// A minimal HTTP/1.x responder for `GET /metrics` and `GET /healthz`, one request per
/// connection. Called on the node's loop thread only.
final class MetricsHandler: ConnectionHandler {
    private unowned let node: Node
    let conn: Connection
    private var request: [UInt8] = []

    init(node: Node, conn: Connection) {
        self.node = node
        self.conn = conn
    }

    func start() {
        conn.startReading()
        conn.setTimer(5000)
    }

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        request.append(contentsOf: bytes)
        guard let end = request.firstRange(of: [13, 10, 13, 10]) else {
            if request.count > 8192 { respond(431, "request header too large\n") }
            return
        }
        let head = String(decoding: request[..<end.lowerBound], as: UTF8.self)
        let parts = head.split(separator: "\r\n").first?.split(separator: " ") ?? []
        guard parts.count >= 2, parts[0] == "GET" else { return respond(405, "only GET\n") }
        switch parts[1] {
        case "/metrics": respond(200, node.metrics?.render(node) ?? [], type: "text/plain; version=0.0.4; charset=utf-8")
        case "/healthz": respond(200, "ok\n")
        default: respond(404, "not found: try /metrics or /healthz\n")
        }
    }

    private func respond(_ code: Int, _ body: String) { respond(code, Array(body.utf8)) }

    private func respond(_ code: Int, _ body: [UInt8], type: String = "text/plain; charset=utf-8") {
        guard conn.state == .open else { return }
        let reason = [200: "OK", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large"][code] ?? "Error"
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        let p = bytes.withUnsafeBytes { Payload.raw($0) }
        conn.send(p, length: p.count)
        conn.closeAfterFlush(reason: "metrics served")
    }

    func timerFired() { conn.close(reason: "metrics: request timeout") }
    func didConnect(_ status: Int32) {}
    func willClose() {}
    func didClose() { node.forget(conn) }
}
