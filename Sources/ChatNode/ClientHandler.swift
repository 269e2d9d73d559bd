import CUV
import ChatCore
import Logging

/// A client of the chat protocol (docs/protocol.md): cuts its bytes into messages, decides its
/// framing at the handshake, paces it by the rate limit, and hands every message to the Hub.
/// A first line that is a peer's HELLO hands the connection over to a `PeerLink`.
/// Called on the node's loop thread only.
final class ClientHandler: ConnectionHandler, SessionSink {
    private unowned let node: Node
    let conn: Connection
    private var framer: MessageFramer
    private var framing = Framing.line
    private var session: Session?
    /// The handshake named this user and the cluster is settling the name.
    private var waitingFor: ChatName?
    /// The rate limit's pauses; silence does not count while paused (docs/protocol.md §2).
    private var rate: RatePause
    /// What the one timer waits for: end of handshake time, a silence, or a resume (`rate`).
    private var handshakeDeadline: UInt64?
    private var silenceDeadline: UInt64?
    let id: UInt64
    private(set) var address = "?"
    /// The connection became a peer link or a status request: this handler no longer
    /// touches it (its timer and reading belong to the new handler).
    private var handedOver = false

    init(node: Node, conn: Connection, id: UInt64) {
        self.node = node
        self.conn = conn
        self.id = id
        let limits = node.hub.limits
        framer = MessageFramer(maxBytes: limits.maxHandshakeBytes)
        rate = RatePause(rate: limits.rateLimit, nowMs: node.loop.nowMs)
        handshakeDeadline = node.loop.nowMs + limits.handshakeTimeoutMs
    }

    private var loop: EventLoop { conn.loop }
    private var state: Connection.State { conn.state }
    private func send(_ p: Payload, length: Int) { conn.send(p, length: length) }
    private func closeAfterFlush(reason: String, graceMs: UInt64 = Tunables.closeGraceMs) { conn.closeAfterFlush(reason: reason, graceMs: graceMs) }
    private func close(reason: String) { conn.close(reason: reason) }
    private var closeReason: String { conn.closeReason }

    var username: String? { session?.username.display }

    func start() {
        address = conn.peerAddress()
        node.logger.info("connect", metadata: ["conn": "\(id)", "from": "\(address)"])
        conn.startReading()
        rearm()
    }

    // MARK: SessionSink

    func enqueue(_ payload: Payload, length: Int) { send(payload, length: length) }
    var outbox: Outbox? { conn.outbox }

    func loginFinished(_ s: Session?) {
        guard let name = waitingFor else { return }
        waitingFor = nil
        accepted(s, name: name)
        if state == .open && s != nil {
            conn.startReading()
            process()
        }
    }

    func endSession() {
        node.logger.notice("session ended: name granted elsewhere first", metadata: ["conn": "\(id)", "user": "\(username ?? "-")"])
        closeAfterFlush(reason: "name lost in a cluster merge")
    }

    func didConnect(_ status: Int32) {}

    // MARK: Input

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        conn.loop.assertOnLoop()
        framer.append(bytes)
        process()
    }

    /// Hands out every complete message the rate allows, then decides what the timer waits for.
    private func process() {
        let limits = node.hub.limits
        silenceDeadline = nil
        while state == .open && waitingFor == nil && !handedOver {
            if session == nil {
                guard let frame = framer.next() else { break }
                handshake(frame, framing: .line)
                continue
            }
            if let wait = rate.pauseNeeded(pending: framer.hasPartial, nowMs: loop.nowMs) { pause(for: wait); return }
            guard let frame = framer.next() else { break }
            rate.take(nowMs: loop.nowMs)
            deliver(frame)
        }
        guard state == .open, !handedOver else { return }
        if rate.endPause() { conn.startReading() }
        if framer.hasPartial && waitingFor == nil { silenceDeadline = loop.nowMs + limits.silenceMs }
        rearm()
    }

    private func deliver(_ frame: Frame) {
        guard let session else { return }
        if node.hub.receive(frame, from: session) == .exit {
            closeAfterFlush(reason: "sent /exit")
        }
    }

    private func pause(for ms: UInt64) {
        loop.stats.rateLimitPauses += 1
        conn.stopReading()
        rate.pause(for: ms, nowMs: loop.nowMs)
        silenceDeadline = nil
        if let session, rate.shouldTell() {
            send(node.hub.rateLimited, length: node.hub.rateLimited.length(for: session.framing))
        }
        rearm()
    }

    func timerFired() {
        let now = loop.nowMs
        if let h = handshakeDeadline, now >= h, silenceDeadline.map({ now < $0 }) ?? true {
            // A silence that completes the handshake wins over a timeout in the same turn.
            loop.stats.handshakeTimeouts += 1
            node.refusal("handshake timeout", metadata: ["conn": "\(id)", "from": "\(address)"])
            close(reason: "handshake timeout")
            return
        }
        if rate.resumeIsDue(nowMs: now) {
            process()
            return
        }
        if let s = silenceDeadline, now >= s, !rate.isPaused, waitingFor == nil {
            silenceDeadline = nil
            if let frame = framer.flushPartial() {
                if session == nil { handshake(frame, framing: .raw) } else {
                    if rate.take(nowMs: now) { deliver(frame) }
                }
            }
            if state == .open { process() }
            return
        }
        rearm()
    }

    private func rearm() {
        guard state == .open else { return }
        var next = UInt64.max
        if let h = handshakeDeadline { next = h }
        if let s = silenceDeadline { next = min(next, s) }
        if let r = rate.resumeDeadline { next = min(next, r) }
        if next == .max { conn.cancelTimer(); return }
        let now = loop.nowMs
        conn.setTimer(next > now ? next - now : 0)
    }

    // MARK: Handshake (docs/protocol.md §1)

    private func handshake(_ frame: Frame, framing: Framing) {
        self.framing = framing
        let hub = node.hub
        guard case .message(let bytes) = frame else {
            reject(hub.malformed, why: "handshake too long")
            return
        }
        switch Handshake.parse(Array(bytes)) {
        case .malformed:
            reject(hub.malformed, why: "malformed handshake")
        case .peer(let line):
            guard framing == .line else {
                reject(hub.malformed, why: "peer handshake without a newline")
                return
            }
            // No downgrade: a node with TLS takes peer links over TLS only, and only from a
            // peer whose certificate verified against the cluster CA (docs/tls.md).
            if node.tls != nil {
                guard let tls = conn.tls else { return refusePeer("this node requires TLS on peer links") }
                guard tls.peerVerified else { return refusePeer("peer \(tls.peerVerifyProblem)") }
            }
            // The peer handshake must finish by the client handshake's deadline, with short lines.
            handedOver = true
            let link = PeerLink(node: node, conn: conn, dialer: nil, deadlineMs: handshakeDeadline)
            handshakeDeadline = nil
            conn.handler = link
            link.takeOver(firstLine: line, rest: framer.takeBuffered())
        case .http(let requestLine):
            // A browser: the request head and what follows belong to a WebHandler, within
            // the same handshake time.
            handedOver = true
            let web = WebHandler(node: node, conn: conn, id: id, address: address, handshakeDeadline: handshakeDeadline)
            handshakeDeadline = nil
            conn.handler = web
            web.takeOver(requestLine: requestLine, rest: framer.takeBuffered())
        case .status:
            if node.tlsClientsRequired && conn.tls == nil { return reject(hub.tlsRequired, why: "plaintext status request; TLS required") }
            handedOver = true
            handshakeDeadline = nil
            conn.cancelTimer()
            let status = StatusHandler(node: node, conn: conn)
            conn.handler = status
            status.start(rest: framer.takeBuffered())
        case .client(let user, let chat):
            if node.tlsClientsRequired && conn.tls == nil { return reject(hub.tlsRequired, why: "plaintext client; TLS required") }
            handshakeDeadline = nil
            switch hub.login(username: user, chatID: chat, framing: framing, sink: self) {
            case .accepted(let s):
                accepted(s, name: user)
            case .pending:
                // Nothing more is read while the cluster settles the name: a client cannot
                // pile up input behind a login that waits (docs/security.md).
                waitingFor = user
                conn.stopReading()
            case .nameTaken:
                accepted(nil, name: user)
            }
        }
    }

    private func accepted(_ s: Session?, name: ChatName) {
        guard let s else {
            node.logger.info("name taken", metadata: ["conn": "\(id)", "user": "\(name)"])
            closeAfterFlush(reason: "name taken")
            return
        }
        session = s
        node.authenticated(conn)
        framer.maxBytes = node.hub.limits.maxMessageBytes
        framer.releaseIfEmpty()
        node.logger.info("login", metadata: [
            "conn": "\(id)", "user": "\(s.username)", "room": "\(s.chatID)", "framing": "\(s.framing)"])
    }

    /// A peer HELLO this node will not take: an ERROR line the dialer logs, and a warning here.
    private func refusePeer(_ why: String) {
        loop.stats.handshakeFailures += 1
        node.refusal("peer link refused", level: .warning, metadata: ["conn": "\(id)", "from": "\(address)", "reason": "\(why)"])
        let p = Payload.line(PeerMessage.error(reason: why).encoded)
        send(p, length: p.count)
        closeAfterFlush(reason: why, graceMs: Tunables.refusalGraceMs)
    }

    func tlsFailed(_ reason: String) {
        loop.stats.handshakeFailures += 1
        loop.stats.tlsHandshakeFailures += 1
        // Rate-limited like every refusal: junk after 0x16 from many connections is one line a while.
        node.refusal("TLS handshake failed", metadata: ["conn": "\(id)", "from": "\(address)", "reason": "\(reason)"])
    }

    private func reject(_ reply: Payload, why: String) {
        loop.stats.handshakeFailures += 1
        node.refusal(why, metadata: ["conn": "\(id)", "from": "\(address)"])
        send(reply, length: reply.length(for: framing))
        closeAfterFlush(reason: why)
    }

    /// The node is stopping: tell the client, as the original server does.
    func sayGoodbye() {
        if let session {
            send(node.hub.exit, length: node.hub.exit.length(for: session.framing))
        }
        closeAfterFlush(reason: "node stopping", graceMs: Tunables.stoppingGraceMs)
    }

    // MARK: Closing

    func willClose() {
        let level: Logger.Level = closeReason.hasPrefix("slow consumer") ? .notice : .info
        node.logger.log(level: level, "disconnect", metadata: [
            "conn": "\(id)", "user": "\(username ?? "-")", "reason": "\(closeReason)"])
        if let session {
            node.hub.logout(session)
            self.session = nil
        }
        if let name = waitingFor { node.hub.abandonLogin(username: name, sink: self) }
    }

    func didClose() { node.forget(conn) }
}
