import CUV
import ChatCore
import Logging

/// A link to another node (docs/cluster-protocol.md §3): the HELLO/AUTH handshake, then
/// lines handed to the Cluster. Incoming links start as clients and are handed over at
/// their first line; outgoing ones are made by a `PeerDialer`. Until the handshake is done
/// a link costs no more than a client handshake: lines of at most
/// `Limits.maxPreAuthLineBytes`, and the handshake deadline. Called on the loop thread only.
final class PeerLink: ConnectionHandler {
    private unowned let node: Node
    let conn: Connection
    private var handshake: PeerHandshake
    private var framer: MessageFramer
    /// The node at the other end, once the handshake is done.
    private(set) var remote: NodeID?
    private(set) var established = false
    /// The dialer that made this link; nil for a link the other node dialed.
    let dialer: PeerDialer?
    let openedMs: UInt64
    private(set) var lastHeardMs: UInt64
    private(set) var address = "?"

    private static let errorPrefix: [UInt8] = Array("ERROR ".utf8)

    /// Longest peer line once the link is open: a STATE line lists every name a node holds.
    static let maxLineBytes = 16 * 1024 * 1024
    /// When the handshake must be done (connect, HELLO and AUTH included).
    private var handshakeDeadlineMs: UInt64

    /// `deadlineMs`: when the handshake must be done; an incoming link keeps the deadline
    /// its connection had as a client.
    init(node: Node, conn: Connection, dialer: PeerDialer?, deadlineMs: UInt64? = nil) {
        self.node = node
        self.conn = conn
        self.dialer = dialer
        handshake = node.newHandshake()
        framer = MessageFramer(maxBytes: Limits.maxPreAuthLineBytes)
        openedMs = node.loop.nowMs
        lastHeardMs = openedMs
        handshakeDeadlineMs = deadlineMs ?? openedMs + node.hub.limits.handshakeTimeoutMs
        conn.maxQueueBytes = node.peerQueueBytes
        conn.backlogCap = nil  // peer links have their own, larger queues (SPEC.md §2)
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
        handle(line: Substring(firstLine))
        if !rest.isEmpty, conn.state == .open { rest.withUnsafeBytes { didRead($0) } }
    }

    func didConnect(_ status: Int32) {
        guard status == 0 else {
            conn.close(reason: "connect failed: \(uvError(status))")
            return
        }
        address = conn.peerAddress()
        conn.startReading()
        for m in handshake.start() { send(m) }
    }

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        lastHeardMs = node.loop.nowMs
        framer.append(bytes)
        while conn.state == .open, let frame = framer.next() {
            guard case .message(let line) = frame else {
                refuse("line longer than \(framer.maxBytes) bytes")
                return
            }
            if established, let remote, !line.starts(with: PeerLink.errorPrefix) {
                // The open link's traffic goes to the cluster as bytes (chat never becomes a String).
                do {
                    try line.withUnsafeBytes {
                        try node.cluster.receive(bytes: $0, from: remote, nowMs: node.loop.nowMs, wallMs: wallClockMs())
                    }
                } catch {
                    refuse("\(error)")
                }
                continue
            }
            guard let text = String(validating: line, as: UTF8.self) else {
                refuse("line is not UTF-8")
                return
            }
            handle(line: Substring(text))
        }
    }

    private func handle(line: Substring) {
        guard established, let remote else { return handshakeStep(line) }
        if line.hasPrefix("ERROR ") {
            log.notice("peer closed the link", metadata: ["peer": "\(remote)", "reason": "\(LogSafe.text(line.dropFirst(6)))"])
            conn.close(reason: "peer sent \(LogSafe.text(line))")
            return
        }
        do {
            try node.cluster.receive(line: line, from: remote, nowMs: node.loop.nowMs, wallMs: wallClockMs())
        } catch {
            refuse("\(error)")
        }
    }

    private func handshakeStep(_ line: Substring) {
        let msg: PeerMessage
        do { msg = try PeerMessage.decode(String(line)) } catch {
            refuse("\(error)")
            return
        }
        let (out, outcome) = handshake.receive(msg)
        for m in out { send(m) }
        switch outcome {
        case .waiting: break
        case .failed(let reason):
            node.refusal("peer link refused", metadata: ["peer": "\(address)", "reason": "\(LogSafe.text(reason))"])
            conn.closeAfterFlush(reason: LogSafe.text(reason))
        case .established(let id, let adv):
            remote = id
            established = true
            framer.maxBytes = PeerLink.maxLineBytes
            conn.cancelTimer()
            node.authenticated(conn)
            node.linkEstablished(self, remote: id, advertise: adv)
        }
    }

    /// A protocol error: tell the peer why, log it, drop the link (it will be redialed).
    private func refuse(_ reason: String) {
        conn.loop.stats.peerProtocolErrors += 1
        let safe = LogSafe.text(reason)
        node.refusal("peer link dropped: protocol error", metadata: ["peer": "\(remote?.text ?? address)", "reason": "\(safe)"])
        send(.error(reason: safe))
        conn.closeAfterFlush(reason: safe, graceMs: 200)
    }

    func send(_ m: PeerMessage) {
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

/// Keeps one address of the cluster dialed (a `--peer`, or a node learned by gossip),
/// redialing with capped exponential backoff whatever closed the link (SPEC.md §4.1).
final class PeerDialer {
    let address: String
    /// The node this address reached last time, once known.
    var node: NodeID?
    var link: PeerLink?
    /// Its address is being looked up.
    var resolving = false
    var resolution: Resolution?
    private(set) var nextAttemptMs: UInt64 = 0
    private var backoffMs = PeerDialer.minBackoffMs
    static let minBackoffMs: UInt64 = 200
    static let maxBackoffMs: UInt64 = 2000

    /// Learned from gossip (not a `--peer`): bounded, and forgotten when its node is gone.
    let learned: Bool
    /// Since when its node has been neither linked nor alive (learned addresses only).
    var goneSinceMs: UInt64?

    init(address: String, node: NodeID? = nil, learned: Bool = false) {
        self.address = address
        self.node = node
        self.learned = learned
    }

    func attempting(nowMs: UInt64) {
        nextAttemptMs = nowMs + backoffMs
        backoffMs = min(backoffMs * 2, PeerDialer.maxBackoffMs)
    }

    func linkUp() { backoffMs = PeerDialer.minBackoffMs }

    func linkEnded(nowMs: UInt64) {
        link = nil
        nextAttemptMs = max(nextAttemptMs, nowMs + PeerDialer.minBackoffMs)
    }

    func retryLater(nowMs: UInt64, ms: UInt64) { nextAttemptMs = nowMs + ms }
}
