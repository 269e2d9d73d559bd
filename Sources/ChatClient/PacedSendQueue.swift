import ChatCore

/// Messages waiting to go to the node, and how they are framed on the wire.
///
/// Line session: each message is sent as `<text>\n` and leaving as `/exit\n`: our node ends a
/// message at `\n` in both framings, so this is exact and costs no delay.
///
/// Raw session (the reply was a bare `200`, as from the original server): each message is
/// sent bare, like the original client does. The original server relays bytes as they are,
/// so a trailing `\n` would reach every member as part of the text (an extra blank line in
/// the original client), and `/exit` would be relayed as `alice - /exit` (it only knows EOF).
/// So leaving a raw session sends nothing: we just close, as the original client does.
/// With no terminator, only time separates messages: consecutive messages are spaced
/// `rawGapMs` apart, longer than our node's 100 ms end-of-message silence, so a fast typist
/// or a piped file never has two messages glued into one on either server.
public struct PacedSendQueue: Sendable {
    public enum Item: Equatable, Sendable {
        case message([UInt8])
        /// Leave the session once every message before it is out.
        case goodbye
    }

    public let framing: Framing
    public let rawGapMs: UInt64
    public private(set) var items: [Item] = []
    /// When the last raw message was released (monotonic ms).
    private var lastReleaseMs: UInt64?

    /// `acceptedAtMs`: when the `200` arrived. In a raw session the first message also waits
    /// the gap after it: the original server sends `200` before it puts the connection in its
    /// room, and a message landing in between kills that connection (its thread finds no
    /// room). The original client never hit this because it sleeps 0.2 s before reading input.
    public init(framing: Framing, rawGapMs: UInt64 = 200, acceptedAtMs: UInt64? = nil) {
        self.framing = framing
        self.rawGapMs = rawGapMs
        self.lastReleaseMs = framing == .raw ? acceptedAtMs : nil
    }

    public var isEmpty: Bool { items.isEmpty }
    public var queuedBytes: Int {
        items.reduce(0) { if case .message(let m) = $1 { return $0 + m.count } else { return $0 } }
    }

    public mutating func enqueue(_ item: Item) { items.append(item) }

    /// Takes what may go out now. `goodbye` is true when the goodbye was reached (its bytes,
    /// if any, are in `bytes`); `nextMs` is when to ask again while items wait for their gap.
    public mutating func release(nowMs: UInt64) -> (bytes: [UInt8], goodbye: Bool, nextMs: UInt64?) {
        var out: [UInt8] = []
        switch framing {
        case .line:
            while !items.isEmpty {
                switch items.removeFirst() {
                case .message(let m):
                    out += m
                    out.append(UInt8(ascii: "\n"))
                case .goodbye:
                    out += Array("/exit\n".utf8)
                    return (out, true, nil)
                }
            }
            return (out, false, nil)
        case .raw:
            guard let first = items.first else { return ([], false, nil) }
            if let last = lastReleaseMs, nowMs < last + rawGapMs {
                return ([], false, last + rawGapMs)
            }
            items.removeFirst()
            guard case .message(let m) = first else { return ([], true, nil) }
            lastReleaseMs = nowMs
            return (m, false, items.isEmpty ? nil : nowMs + rawGapMs)
        }
    }
}
