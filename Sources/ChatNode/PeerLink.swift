import CUV
import ChatCore
import Logging

/// A link to another node (docs/cluster-protocol.md §3): the bytes of one connection fed
/// to a `PeerSession` (the core decides the handshake, the line limits and what goes to
/// the Cluster), and its events acted on: send, bring the link up, log and close.
/// Incoming links start as clients and are handed over at their first line; outgoing ones
/// are made by a `PeerDialer`. Until the handshake is done a link costs no more than a
/// client handshake: short lines and the handshake deadline. Called on the loop thread only.
final class PeerLink: ConnectionHandler {
    private unowned let node: Node
    let conn: Connection
    private var session: PeerSession
    /// The node at the other end, once the handshake is done (kept here as well as in the
    /// session: the session is being mutated while its events are handled).
    private(set) var remote: NodeID?
    var established: Bool { remote != nil }
    /// The dialer that made this link; nil for a link the other node dialed.
    let dialer: PeerDialer?
    private(set) var lastHeardMs: UInt64
    private(set) var address = "?"

    /// The node's loop stalled for `ms`: silence in that time is not the peer's (`Liveness`).
    func excuse(_ ms: UInt64) { lastHeardMs += ms }
    /// When the handshake must be done (connect, HELLO and AUTH included).
    private var handshakeDeadlineMs: UInt64

    /// `deadlineMs`: when the handshake must be done; an incoming link keeps the deadline
    /// its connection had as a client.
    init(node: Node, conn: Connection, dialer: PeerDialer?, deadlineMs: UInt64? = nil) {
        self.node = node
        self.conn = conn
        self.dialer = dialer
        session = PeerSession(handshake: node.newHandshake())
        lastHeardMs = node.loop.nowMs
        handshakeDeadlineMs = deadlineMs ?? node.loop.nowMs + node.hub.limits.handshakeTimeoutMs
        conn.maxQueueBytes = node.peerQueueBytes
        conn.backlogCap = nil  // peer links have their own, larger queues
        node.peerConnections[ObjectIdentifier(conn)] = self
        armHandshakeTimer()
    }

    private func armHandshakeTimer() {
        let now = node.loop.nowMs
        conn.setTimer(handshakeDeadlineMs > now ? handshakeDeadlineMs - now : 0)
    }

    private var log: Logger { node.logger }

    /// An incoming connection whose first line was a peer HELLO.
    func takeOver(firstLine: String, rest: [UInt8]) {
        address = conn.peerAddress()
        // The HELLO arrived decrypted: the TLS session is up, and the proofs bind to it.
        if conn.tls != nil { session.handshake = node.newHandshake(binding: conn.channelBinding) }
        session.receive(line: firstLine) { on($0) }
        if !rest.isEmpty, conn.state == .open { rest.withUnsafeBytes { didRead($0) } }
    }

    func didConnect(_ status: Int32) {
        guard status == 0 else {
            conn.close(reason: "connect failed: \(uvError(status))")
            return
        }
        address = conn.peerAddress()
        conn.startReading()
        // Over TLS, HELLO waits for the TLS handshake: the proofs bind to its exporter value.
        if conn.tls == nil { for m in session.start() { send(m) } }
    }

    func tlsEstablished() {
        guard dialer != nil, !established else { return }
        session.handshake = node.newHandshake(binding: conn.channelBinding)
        for m in session.start() { send(m) }
    }

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        node.loop.assertOnLoop()
        lastHeardMs = node.loop.nowMs
        session.receive(bytes, cluster: node.cluster, nowMs: node.loop.nowMs, wallMs: wallClockMs()) { on($0) }
    }

    /// What the session decided. Never touches `session` (it is being mutated).
    private func on(_ event: PeerSession.Event) {
        guard conn.state == .open else { return }
        switch event {
        case .send(let m):
            send(m)
        case .established(let id, let adv):
            remote = id
            conn.cancelTimer()
            node.authenticated(conn)
            node.linkEstablished(self, remote: id, advertise: adv)
        case .refused(let reason):
            node.refusal("peer link refused", metadata: ["peer": "\(address)", "reason": "\(reason)"])
            conn.closeAfterFlush(reason: reason)
        case .protocolError(let reason):
            conn.loop.stats.peerProtocolErrors += 1
            node.refusal("peer link dropped: protocol error", metadata: ["peer": "\(remote?.text ?? address)", "reason": "\(reason)"])
            send(.error(reason: reason))
            conn.closeAfterFlush(reason: reason, graceMs: Tunables.refusalGraceMs)
        case .peerClosed(let reason):
            log.notice("peer closed the link", metadata: ["peer": "\(remote?.text ?? address)", "reason": "\(reason)"])
            conn.close(reason: "peer sent ERROR \(reason)")
        }
    }

    func send(_ m: PeerMessage) {
        node.loop.assertOnLoop()
        let p = Payload.line(m.encoded)
        conn.send(p, length: p.count)
    }

    func timerFired() {
        guard !established, conn.state == .open else { return }
        if node.loop.nowMs < handshakeDeadlineMs { return armHandshakeTimer() }
        conn.loop.stats.handshakeTimeouts += 1
        node.refusal("peer handshake timeout", metadata: ["peer": "\(address)"])
        conn.close(reason: "peer handshake timeout")
    }

    func tlsFailed(_ reason: String) {
        conn.loop.stats.peerProtocolErrors += 1
        node.refusal("peer link refused", level: .warning, metadata: ["peer": "\(remote?.text ?? address)", "reason": "TLS: \(reason)"])
    }

    func willClose() {
        if established, let remote { node.linkClosed(self, remote: remote) }
    }

    func didClose() {
        node.peerConnections[ObjectIdentifier(conn)] = nil
        node.forget(conn)
        dialer?.linkEnded(nowMs: node.loop.nowMs)
    }
}

/// Wall-clock milliseconds since the epoch, for the hybrid logical clock of claims.
func wallClockMs() -> UInt64 {
    var tv = uv_timeval64_t()
    uv_gettimeofday(&tv)
    return UInt64(tv.tv_sec) * 1000 + UInt64(tv.tv_usec) / 1000
}
