/// The chat state of one node: who is logged in, which rooms exist, and what every
/// message turns into (SPEC.md §3). No I/O: the runtime hands it handshakes, messages and
/// disconnects, and it answers through each session's `SessionSink`.
/// Called on the node's loop thread only.
public final class Hub {
    public let limits: Limits
    /// Logged-in sessions by lowercased username: the name registry of this node.
    public private(set) var sessions: [String: Session] = [:]
    /// Rooms with at least one member, by lowercased chat id.
    public private(set) var rooms: [String: Room] = [:]
    public private(set) var stats = Stats()
    /// The cluster this node belongs to; nil for a lone node.
    public var cluster: Cluster?
    /// Logins waiting for the cluster to settle their name, by lowercased username.
    private var pendingLogins: [String: PendingLogin] = [:]

    struct PendingLogin {
        let username: ChatName
        let chatID: ChatName
        let framing: Framing
        unowned(unsafe) let sink: any SessionSink
    }

    /// Replies shared by every connection, encoded once.
    public let accepted = Payload.line(Notice.accepted)
    public let malformed = Payload.line(Notice.malformed)
    public let nameTaken = Payload.line(Notice.nameTaken)
    public let exit = Payload.line(Notice.exit)
    public let tlsRequired = Payload.line(Notice.tlsRequired)
    let tooLong: Payload
    let invalidUTF8 = Payload.line(Notice.invalidUTF8)
    let controlCharacter = Payload.line(Notice.controlCharacter)
    public let rateLimited: Payload
    let nameLost = Payload.line(Notice.nameLost)

    /// Counters for metrics and status; plain integers, the loop is single-threaded.
    public struct Stats: Sendable {
        /// Messages accepted from local members.
        public var messagesIn = 0
        /// Messages accepted from other nodes.
        public var messagesFromPeers = 0
        /// Copies handed to local members (fan-out).
        public var deliveries = 0
        public var refusedTooLong = 0
        public var refusedInvalidUTF8 = 0
        public var refusedControl = 0
        public var logins = 0
        public var loginsRefused = 0
        public var kicked = 0
        public var refused: Int { refusedTooLong + refusedInvalidUTF8 + refusedControl }
    }

    public enum LoginResult {
        case accepted(Session)
        case nameTaken
        /// The cluster is asked; `SessionSink.loginFinished` tells the outcome.
        case pending
    }

    public enum InputResult: Equatable {
        case ok
        /// The member sent `/exit`: the runtime closes the connection.
        case exit
    }

    public init(limits: Limits) {
        self.limits = limits
        tooLong = Payload.line(Notice.tooLong(limits.maxMessageBytes))
        rateLimited = Payload.line(Notice.rateLimited(limits.rateLimit))
    }

    /// A complete client handshake: claims the name, joins (or creates) the room, and
    /// sends `200`, or sends `403` when the name is held (SPEC.md §3.1).
    public func login(username: ChatName, chatID: ChatName, framing: Framing, sink: any SessionSink) -> LoginResult {
        let key = username.key
        if sessions[key] != nil || pendingLogins[key] != nil {
            stats.loginsRefused += 1
            sink.enqueue(nameTaken, length: nameTaken.length(for: framing))
            return .nameTaken
        }
        // Announce the room before claiming: a node that answers our claim already routes the
        // room's traffic here, so a member admitted on its 200 misses nothing sent after it.
        announce(chatID.key)
        switch cluster?.claim(key) ?? .granted {
        case .taken:
            retract(chatID.key)
            stats.loginsRefused += 1
            sink.enqueue(nameTaken, length: nameTaken.length(for: framing))
            return .nameTaken
        case .pending:
            pendingLogins[key] = PendingLogin(username: username, chatID: chatID, framing: framing, sink: sink)
            return .pending
        case .granted:
            return .accepted(admit(username: username, chatID: chatID, framing: framing, sink: sink))
        }
    }

    /// The cluster settled a pending login's name.
    func claimFinished(nameKey: String, granted: Bool) {
        guard let p = pendingLogins.removeValue(forKey: nameKey) else { return }
        if granted {
            p.sink.loginFinished(admit(username: p.username, chatID: p.chatID, framing: p.framing, sink: p.sink))
        } else {
            stats.loginsRefused += 1
            retract(p.chatID.key)
            p.sink.enqueue(nameTaken, length: nameTaken.length(for: p.framing))
            p.sink.loginFinished(nil)
        }
    }

    /// A connection went away while its login waited: the claim is withdrawn.
    public func abandonLogin(username: ChatName, sink: any SessionSink) {
        guard let p = pendingLogins[username.key], p.sink === sink else { return }
        pendingLogins[username.key] = nil
        cluster?.release(username.key)
        retract(p.chatID.key)
    }

    /// Rooms the cluster has been told this node follows: those with members or logins waiting.
    private(set) var announced: Set<String> = []

    private func announce(_ roomKey: String) {
        if announced.insert(roomKey).inserted { cluster?.roomChanged(roomKey, joined: true) }
    }

    private func retract(_ roomKey: String) {
        guard rooms[roomKey] == nil, !pendingLogins.values.contains(where: { $0.chatID.key == roomKey }),
              announced.remove(roomKey) != nil else { return }
        cluster?.roomChanged(roomKey, joined: false)
    }

    /// Joins (or creates) the room and sends `200`.
    private func admit(username: ChatName, chatID: ChatName, framing: Framing, sink: any SessionSink) -> Session {
        let session = Session(username: username, chatID: chatID, framing: framing, sink: sink)
        stats.logins += 1
        sessions[username.key] = session
        let room: Room
        if let r = rooms[chatID.key] { room = r } else {
            room = Room(id: chatID)
            rooms[chatID.key] = room
            announce(chatID.key)
        }
        room.add(session)
        session.send(accepted)
        return session
    }

    /// One framed message from a logged-in member (SPEC.md §3.3–3.4).
    public func receive(_ frame: Frame, from session: Session) -> InputResult {
        switch frame {
        case .tooLong:
            stats.refusedTooLong += 1
            refuse(session, tooLong)
            return .ok
        case .message(let bytes):
            if bytes.isEmpty { return .ok }
            if bytes.elementsEqual(Notice.exit.utf8) { return .exit }
            return bytes.withUnsafeBytes { say($0, from: session) }
        }
    }

    /// Validates and relays a non-empty message's text to the sender's room.
    public func say(_ text: UnsafeRawBufferPointer, from session: Session) -> InputResult {
        if text.count > limits.maxMessageBytes { stats.refusedTooLong += 1; refuse(session, tooLong); return .ok }
        switch TextCheck.problem(in: text) {
        case .invalidUTF8?: stats.refusedInvalidUTF8 += 1; refuse(session, invalidUTF8); return .ok
        case .controlCharacter?: stats.refusedControl += 1; refuse(session, controlCharacter); return .ok
        case nil: break
        }
        guard let room = session.room else { return .ok }
        stats.messagesIn += 1
        let payload = Payload.line(prefix: session.prefix, text: text)
        room.fanOut(payload)
        stats.deliveries += room.members.count
        cluster?.relay(roomKey: room.id.key, user: session.username.display, text: text)
        return .ok
    }

    /// A message from a member on another node, for this node's members of the room.
    func deliverRemote(roomKey: String, user: String, text: String) {
        var t = text
        t.withUTF8 { deliverRemote(roomKey: roomKey, user: user, text: UnsafeRawBufferPointer($0)) }
    }

    func deliverRemote(roomKey: String, user: String, text: UnsafeRawBufferPointer) {
        stats.messagesFromPeers += 1
        guard let room = rooms[roomKey] else { return }
        room.fanOut(Payload.line(user: user, text: text))
        stats.deliveries += room.members.count
    }

    /// The name went to an earlier claim on another node: the notice, then the session ends.
    func kick(nameKey: String) {
        guard let s = sessions[nameKey] else { return }
        stats.kicked += 1
        s.send(nameLost)
        s.sink.endSession()
    }

    /// The session's connection is gone: free the name, leave the room, drop an empty room.
    public func logout(_ session: Session) {
        guard sessions[session.username.key] === session else { return }
        sessions[session.username.key] = nil
        cluster?.release(session.username.key)
        if let room = session.room {
            room.remove(session)
            if room.members.isEmpty {
                rooms[room.id.key] = nil
                retract(room.id.key)
            }
        }
    }

    private func refuse(_ session: Session, _ notice: Payload) {
        session.send(notice)
    }
}
