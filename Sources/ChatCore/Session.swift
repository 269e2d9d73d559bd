/// Where a session's outgoing bytes go: the runtime's connection. Called on the node's
/// loop thread only. `enqueue` must not close or free anything synchronously (it runs
/// inside a room's fan-out loop); a connection that must go marks itself and goes later.
public protocol SessionSink: AnyObject {
    func enqueue(_ payload: Payload, length: Int)
    /// The connection's queue, when it has one: fan-outs append to it directly.
    var outbox: Outbox? { get }
    /// A login that waited for the cluster is settled: the session (its `200` is queued),
    /// or nil (its `403` is queued).
    func loginFinished(_ session: Session?)
    /// The session must end: its name went to an earlier claim (SPEC.md §4.2.5). Its notice is queued.
    func endSession()
    /// True for a WebSocket connection: everything the session gets goes out as one
    /// text frame per message (`Payload.webSocketFrame`), shared by all web receivers.
    /// Fan-outs append that form to `outbox`; `enqueue` always gets the plain payload
    /// and a web sink frames it itself.
    var isWebSocket: Bool { get }
}

extension SessionSink {
    public var outbox: Outbox? { nil }
    public var isWebSocket: Bool { false }
}

/// A logged-in member: one username in one room, on one connection.
public final class Session {
    public let username: ChatName
    public let chatID: ChatName
    public let framing: Framing
    /// A browser's session: it gets WebSocket frames (see `SessionSink.isWebSocket`).
    public let webSocket: Bool
    /// The connection outlives its session: the runtime logs the session out before it
    /// frees the connection, so an unowned reference is safe and keeps the fan-out cheap.
    public unowned(unsafe) let sink: any SessionSink
    /// `<USERNAME> - `, encoded once at login.
    let prefix: [UInt8]
    /// The connection's queue (nil for sinks without one: then `sink.enqueue`). Unmanaged,
    /// like the sink: the connection owns it and outlives the session, and a strong
    /// reference cost a retain/release pair per member in every fan-out (perf: 19 % of the
    /// CPU in fanout).
    let outbox: Unmanaged<Outbox>?
    /// Position in `room.members`, for O(1) removal.
    var slot = -1
    var room: Room?

    init(username: ChatName, chatID: ChatName, framing: Framing, sink: any SessionSink) {
        self.username = username
        self.chatID = chatID
        self.framing = framing
        self.sink = sink
        webSocket = sink.isWebSocket
        prefix = Array((username.display + " - ").utf8)
        outbox = sink.outbox.map { Unmanaged.passUnretained($0) }
    }

    @inline(__always)
    func send(_ payload: Payload) {
        if let outbox {
            // A web session gets the message's frame form, built once for all of them.
            let p = webSocket ? payload.webSocketFrame : payload
            let length = p.length(for: framing)
            outbox._withUnsafeGuaranteedRef { $0.append(p, length: length) }
        } else {
            sink.enqueue(payload, length: payload.length(for: framing))
        }
    }
}

/// A chat room: exists while it has members (SPEC.md §3.1).
public final class Room {
    public let id: ChatName
    /// The Hub's session table owns the sessions; the room only points at them, so a
    /// fan-out walks the array without retaining and releasing every member.
    public struct Member {
        let ref: Unmanaged<Session>
        public var session: Session { ref.takeUnretainedValue() }
    }
    public private(set) var members: ContiguousArray<Member> = []

    init(id: ChatName) { self.id = id }

    func add(_ s: Session) {
        s.slot = members.count
        s.room = self
        members.append(Member(ref: Unmanaged.passUnretained(s)))
    }

    func remove(_ s: Session) {
        let i = s.slot
        guard i >= 0, i < members.count, members[i].session === s else { return }
        let last = members.removeLast()
        if i < members.count {
            members[i] = last
            last.session.slot = i
        }
        s.slot = -1
        s.room = nil
    }

    /// Hands one shared payload to every member.
    @inline(__always)
    func fanOut(_ payload: Payload) {
        members.withUnsafeBufferPointer { all in
            for m in all { m.ref._withUnsafeGuaranteedRef { $0.send(payload) } }
        }
    }
}
