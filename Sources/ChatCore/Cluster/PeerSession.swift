/// Everything a peer link decides (docs/cluster-protocol.md §1, §3), without the socket:
/// bytes are cut into lines (at most `Limits.maxPreAuthLineBytes` until the handshake is
/// done, `maxLineBytes` after), handshake lines go to the `PeerHandshake`, an `ERROR` ends
/// the link, and an open link's lines go to the `Cluster`. The runtime (`PeerLink`) feeds
/// it bytes and acts on the events; the `peer_session` fuzz target drives it the same way.
public struct PeerSession {
    /// Longest peer line once the link is open: a STATE line lists every name a node holds.
    public static let maxLineBytes = 16 * 1024 * 1024

    public enum Event: Equatable {
        /// Send this message to the peer.
        case send(PeerMessage)
        /// The handshake is done: the link is open to `node`, dialable at `advertise`.
        case established(node: NodeID, advertise: String)
        /// The handshake failed (wrong secret, modes, itself, …): the ERROR was sent; close.
        case refused(reason: String)
        /// The peer broke the protocol: send `ERROR <reason>` and close.
        case protocolError(reason: String)
        /// The peer ended the link with `ERROR <reason>`.
        case peerClosed(reason: String)
    }

    public var handshake: PeerHandshake
    private var framer = MessageFramer(maxBytes: Limits.maxPreAuthLineBytes)
    /// The node at the other end, once the handshake is done.
    public private(set) var remote: NodeID?
    /// Set once the link is over: nothing more is read.
    public private(set) var finished = false

    public init(handshake: PeerHandshake) { self.handshake = handshake }

    public var established: Bool { remote != nil }

    private static let errorPrefix: [UInt8] = Array("ERROR ".utf8)

    /// The dialing side's first message.
    public mutating func start() -> [PeerMessage] { handshake.start() }

    /// Takes bytes from the peer. `emit` gets each event in order; the cluster gets each
    /// line of the open link. An `.established` event is emitted before any line that
    /// follows it is handed to the cluster, so the runtime can bring the link up first.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, cluster: Cluster, nowMs: UInt64, wallMs: UInt64,
                                 emit: (Event) -> Void) {
        guard !finished else { return }
        framer.append(bytes)
        while !finished, let frame = framer.next() {
            guard case .message(let line) = frame else {
                return end(.protocolError(reason: "line longer than \(framer.maxBytes) bytes"), emit)
            }
            if let remote, !line.starts(with: PeerSession.errorPrefix) {
                // The open link's traffic goes to the cluster as bytes (chat never becomes a String).
                do {
                    try line.withUnsafeBytes { try cluster.receive(bytes: $0, from: remote, nowMs: nowMs, wallMs: wallMs) }
                } catch {
                    return end(.protocolError(reason: LogSafe.text("\(error)")), emit)
                }
                continue
            }
            guard let text = String(validating: line, as: UTF8.self) else {
                return end(.protocolError(reason: "line is not UTF-8"), emit)
            }
            receive(line: text, emit)
        }
    }

    /// A whole line (without `\n`): the first line of an incoming link, read as a client handshake.
    public mutating func receive(line: String, _ emit: (Event) -> Void) {
        guard !finished else { return }
        if established {
            guard line.hasPrefix("ERROR ") else { return end(.protocolError(reason: "a line after the link opened"), emit) }
            return end(.peerClosed(reason: LogSafe.text(line.dropFirst(6))), emit)
        }
        let msg: PeerMessage
        do { msg = try PeerMessage.decode(line) } catch {
            return end(.protocolError(reason: LogSafe.text("\(error)")), emit)
        }
        let (out, outcome) = handshake.receive(msg)
        for m in out { emit(.send(m)) }
        switch outcome {
        case .waiting: break
        case .failed(let reason):
            finished = true
            emit(.refused(reason: LogSafe.text(reason)))
        case .established(let id, let adv):
            remote = id
            framer.maxBytes = PeerSession.maxLineBytes
            emit(.established(node: id, advertise: adv))
        }
    }

    /// Bytes read but not yet cut into lines (handed over with the connection).
    public var hasBuffered: Bool { framer.hasPartial }

    private mutating func end(_ e: Event, _ emit: (Event) -> Void) {
        finished = true
        emit(e)
    }
}
