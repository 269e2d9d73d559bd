import CUV
import ChatCore
import Logging

/// A browser (docs/protocol.md, "Web clients"): a connection whose first line was an HTTP
/// request line. It reads the request head (capped at `Limits.maxHTTPHeadBytes`, within the
/// handshake timeout that started with the connection), then serves the chat page, an
/// error, or upgrades `/ws` to a WebSocket whose first text message is the `user_room`
/// handshake and whose later text messages are chat messages of an ordinary session.
/// It only moves bytes: `HTTPRequestParser`, `WebRoute` and `WebSocketDecoder` decide.
/// Called on the node's loop thread only.
final class WebHandler: ConnectionHandler, SessionSink {
    private unowned let node: Node
    let conn: Connection
    let id: UInt64
    private let address: String
    private enum Phase { case request, webSocket, done }
    private var phase = Phase.request
    /// The request head so far.
    private var head: [UInt8] = []
    private var decoder: WebSocketDecoder
    private var session: Session?
    private var waitingFor: ChatName?
    private var rate: RatePause
    /// Until the session is logged in: the connection's handshake time.
    private var handshakeDeadline: UInt64?

    init(node: Node, conn: Connection, id: UInt64, address: String, handshakeDeadline: UInt64?) {
        self.node = node
        self.conn = conn
        self.id = id
        self.address = address
        self.handshakeDeadline = handshakeDeadline
        let limits = node.hub.limits
        decoder = WebSocketDecoder(maxMessageBytes: limits.maxHandshakeBytes)
        rate = RatePause(rate: limits.rateLimit, nowMs: node.loop.nowMs)
    }

    private var loop: EventLoop { conn.loop }
    var username: String? { session?.username.display }

    /// Takes the connection over from `ClientHandler`: its request line and what followed it.
    func takeOver(requestLine: String, rest: [UInt8]) {
        head = Array(requestLine.utf8) + [0x0D, 0x0A] + rest
        readHead()
        rearm()
    }

    // MARK: SessionSink

    var isWebSocket: Bool { true }
    var outbox: Outbox? { conn.outbox }

    /// The Hub's direct replies (`400`, `403`) come here as plain payloads: sent as frames.
    func enqueue(_ payload: Payload, length: Int) { sendText(payload) }

    func loginFinished(_ s: Session?) {
        guard let name = waitingFor else { return }
        waitingFor = nil
        accepted(s, name: name)
        if conn.state == .open && s != nil {
            conn.startReading()
            process()
        }
    }

    func endSession() {
        node.logger.notice("session ended: name granted elsewhere first", metadata: ["conn": "\(id)", "user": "\(username ?? "-")"])
        closeWebSocket(.policyViolation, "name lost in a cluster merge")
    }

    // MARK: Input

    func didRead(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .request:
            head.append(contentsOf: bytes)
            readHead()
            rearm()
        case .webSocket:
            decoder.append(bytes)
            process()
        case .done:
            break
        }
    }

    private func readHead() {
        guard phase == .request, conn.state == .open else { return }
        switch HTTPRequestParser.parse(head) {
        case .incomplete:
            return
        case .failed(let e):
            refuse(e)
        case .complete(let request, let consumed):
            switch WebRoute.decide(request, origins: node.webOrigins) {
            case .refuse(let e):
                refuse(e)
            case .page(let headOnly):
                phase = .done
                let p = headOnly ? node.webPage.head : node.webPage.full
                conn.send(p, length: p.count)
                head = []
                conn.closeAfterFlush(reason: "page served")
            case .upgrade(let accept):
                let p = HTTPResponse.switching(accept: accept).withUnsafeBytes { Payload.raw($0) }
                conn.send(p, length: p.count)
                phase = .webSocket
                let rest = head[consumed...]
                head = []
                node.logger.info("websocket open", metadata: ["conn": "\(id)", "from": "\(address)"])
                if !rest.isEmpty { decoder.append(contentsOf: rest) }
                process()
            }
        }
    }

    private func refuse(_ e: HTTPError) {
        phase = .done
        // Malformed or oversized heads count as bad handshakes; a 404 or 403 is an answer,
        // and a 408 is counted as a handshake timeout.
        if e.status == 400 || e.status == 431 { loop.stats.handshakeFailures += 1 }
        node.logger.info("http request refused", metadata: ["conn": "\(id)", "status": "\(e.status)", "why": "\(e.reason)"])
        let p = HTTPResponse.error(e).withUnsafeBytes { Payload.raw($0) }
        conn.send(p, length: p.count)
        head = []
        conn.closeAfterFlush(reason: "http \(e.status)")
    }

    /// Hands out every event the rate allows, then decides what the timer waits for.
    private func process() {
        while conn.state == .open && phase == .webSocket && waitingFor == nil {
            if session != nil, let wait = rate.pauseNeeded(pending: decoder.bufferedBytes > 0, nowMs: loop.nowMs) {
                pause(for: wait); return
            }
            guard let event = decoder.next() else { break }
            switch event {
            case .text(let message):
                if session == nil {
                    handshake(message)
                } else {
                    rate.take(nowMs: loop.nowMs)
                    deliver(message)
                }
            case .ping(let payload):
                sendFrame(.pong, payload)
            case .close(let code):
                phase = .done
                sendFrame(.close, WebSocket.closePayload(code))
                conn.closeAfterFlush(reason: "closed by browser (\(code.map(String.init) ?? "no code"))")
            case .fail(let code, let reason):
                loop.stats.handshakeFailures += session == nil ? 1 : 0
                node.logger.info("websocket protocol error", metadata: ["conn": "\(id)", "code": "\(code.rawValue)", "why": "\(reason)"])
                closeWebSocket(code, reason)
            }
        }
        guard conn.state == .open else { return }
        if rate.endPause() { conn.startReading() }
        if session != nil { decoder.releaseIfEmpty() }
        rearm()
    }

    private func deliver(_ message: [UInt8]) {
        guard let session else { return }
        if node.hub.receive(.message(message[...]), from: session) == .exit {
            closeWebSocket(.normal, "sent /exit")
        }
    }

    private func pause(for ms: UInt64) {
        loop.stats.rateLimitPauses += 1
        conn.stopReading()
        rate.pause(for: ms, nowMs: loop.nowMs)
        if session != nil, rate.shouldTell() {
            sendText(node.hub.rateLimited)
        }
        rearm()
    }

    // MARK: The chat handshake (docs/protocol.md §1, as the first text message)

    private func handshake(_ message: [UInt8]) {
        let hub = node.hub
        guard case .client(let user, let chat) = Handshake.parse(message) else {
            loop.stats.handshakeFailures += 1
            node.logger.notice("malformed handshake", metadata: ["conn": "\(id)"])
            sendText(hub.malformed)
            closeWebSocket(.normal, "malformed handshake")
            return
        }
        handshakeDeadline = nil
        switch hub.login(username: user, chatID: chat, framing: .raw, sink: self) {
        case .accepted(let s): accepted(s, name: user)
        case .pending:
            // Nothing more is read while the cluster settles the name (docs/security.md).
            waitingFor = user
            conn.stopReading()
        case .nameTaken: accepted(nil, name: user)
        }
    }

    private func accepted(_ s: Session?, name: ChatName) {
        guard let s else {
            node.logger.info("name taken", metadata: ["conn": "\(id)", "user": "\(name)"])
            closeWebSocket(.normal, "name taken")
            return
        }
        session = s
        node.authenticated(conn)
        node.webSessions += 1
        decoder.maxMessageBytes = node.hub.limits.maxMessageBytes
        node.logger.info("login", metadata: [
            "conn": "\(id)", "user": "\(s.username)", "room": "\(s.chatID)", "framing": "websocket"])
    }

    // MARK: Output

    /// A text the node says (shared, plain): its one text frame, built once per payload.
    private func sendText(_ payload: Payload) {
        let frame = payload.webSocketFrame
        conn.send(frame, length: frame.count)
    }

    private func sendFrame(_ opcode: WebSocket.Opcode, _ payload: [UInt8]) {
        let p = payload.withUnsafeBytes { Payload.webSocket(opcode, $0) }
        conn.send(p, length: p.count)
    }

    /// A close frame with `code`, then the connection closes once it is sent.
    private func closeWebSocket(_ code: WebSocket.CloseCode, _ reason: String) {
        guard conn.state == .open else { return }
        if phase == .webSocket { sendFrame(.close, WebSocket.closePayload(code.rawValue, reason: reason)) }
        phase = .done
        conn.closeAfterFlush(reason: reason)
    }

    /// The node is stopping: `/exit`, as TCP clients get it, then a 1001 close.
    func sayGoodbye() {
        if session != nil { sendText(node.hub.exit) }
        if phase == .webSocket { sendFrame(.close, WebSocket.closePayload(WebSocket.CloseCode.goingAway.rawValue, reason: "node stopping")) }
        phase = .done
        conn.closeAfterFlush(reason: "node stopping", graceMs: Tunables.stoppingGraceMs)
    }

    // MARK: Timer

    func timerFired() {
        let now = loop.nowMs
        if let h = handshakeDeadline, now >= h {
            handshakeDeadline = nil
            loop.stats.handshakeTimeouts += 1
            node.logger.notice("handshake timeout", metadata: ["conn": "\(id)", "phase": "\(phase)"])
            if phase == .request {
                refuse(HTTPError(408, "the request did not arrive within the handshake timeout"))
            } else {
                closeWebSocket(.policyViolation, "handshake timeout")
            }
            return
        }
        if rate.resumeIsDue(nowMs: now) {
            process()
            return
        }
        rearm()
    }

    private func rearm() {
        guard conn.state == .open else { return }
        var next = UInt64.max
        if let h = handshakeDeadline { next = h }
        if let r = rate.resumeDeadline { next = min(next, r) }
        if next == .max { conn.cancelTimer(); return }
        let now = loop.nowMs
        conn.setTimer(next > now ? next - now : 0)
    }

    // MARK: Closing

    func didConnect(_ status: Int32) {}

    func willClose() {
        let level: Logger.Level = conn.closeReason.hasPrefix("slow consumer") ? .notice : .info
        node.logger.log(level: level, "disconnect", metadata: [
            "conn": "\(id)", "user": "\(username ?? "-")", "reason": "\(conn.closeReason)", "web": "true"])
        if let session {
            node.hub.logout(session)
            node.webSessions -= 1
            self.session = nil
        }
        if let name = waitingFor { node.hub.abandonLogin(username: name, sink: self) }
    }

    func didClose() { node.forget(conn) }
}
