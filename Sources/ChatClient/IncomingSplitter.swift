import ChatCore

/// Cuts what the node sends into messages to display (docs/protocol.md §2).
///
/// A message ends at `\n` (a `\r` before it is dropped). In a raw session the node (and the
/// original server) sends messages bare, so the bytes of one read with no `\n` after them
/// are one message: TCP gives no better boundary. A line `/exit` means the node is closing.
public struct IncomingSplitter: Sendable {
    public enum Item: Equatable, Sendable {
        case message([UInt8])
        /// The node said `/exit`: it is closing the session.
        case exit
    }

    public var framing: Framing
    /// After a bare `200` on a line session the `\n` may come with the next read.
    public var skipLeadingNewline: Bool
    /// True when the last raw chunk ended in `/exit` glued to a message (`bob - hi/exit`):
    /// the original server sends `/exit` bare right before closing, so if EOF follows,
    /// that was its goodbye.
    public private(set) var lastChunkEndedWithExit = false
    /// A line session's unterminated tail is cut into a message past this size, so a node
    /// that never sends `\n` cannot grow our memory without bound.
    public let maxPending: Int

    private var pending: [UInt8] = []
    private static let exitWord = Array("/exit".utf8)

    public init(framing: Framing, skipLeadingNewline: Bool = false, maxPending: Int = 65536) {
        self.framing = framing
        self.skipLeadingNewline = skipLeadingNewline
        self.maxPending = maxPending
    }

    /// Feeds one read's bytes; returns what to display, in order. Nothing after `.exit`.
    public mutating func feed<C: Collection>(_ chunk: C) -> [Item] where C.Element == UInt8 {
        var bytes = chunk[...]
        if skipLeadingNewline, let first = bytes.first {
            skipLeadingNewline = false
            let second = bytes.dropFirst().first
            if first == UInt8(ascii: "\n") {
                bytes = bytes.dropFirst()
            } else if first == UInt8(ascii: "\r"), second == UInt8(ascii: "\n") {
                bytes = bytes.dropFirst(2)
            } else if first == UInt8(ascii: "\r"), second == nil {
                bytes = bytes.dropFirst()
                skipLeadingNewline = true   // "\r" now, its "\n" next read
            }
        }
        pending.append(contentsOf: bytes)
        var items: [Item] = []
        var start = 0
        while let nl = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[start..<nl]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            start = nl + 1
            if emit(line, into: &items) { pending.removeAll(); return items }
        }
        pending.removeSubrange(0..<start)
        lastChunkEndedWithExit = false
        switch framing {
        case .line:
            if pending.count > maxPending {
                _ = emit(pending[...], into: &items)
                pending.removeAll()
            }
        case .raw:
            // One read = one message; only a UTF-8 character cut by the read waits for its end.
            let keep = Self.incompleteUTF8Suffix(pending)
            let message = pending[..<(pending.count - keep)]
            if !message.isEmpty {
                if emit(message, into: &items) { pending.removeAll(); return items }
                lastChunkEndedWithExit = message.count > Self.exitWord.count && message.reversed().starts(with: Self.exitWord.reversed())
            }
            pending.removeSubrange(0..<message.count)
        }
        return items
    }

    /// At EOF: whatever is left is a last message.
    public mutating func finish() -> [Item] {
        var items: [Item] = []
        if !pending.isEmpty {
            var line = pending[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            _ = emit(line, into: &items)
            pending.removeAll()
        }
        return items
    }

    /// Appends `line` as an item (empty lines show nothing); true when it was `/exit`.
    private func emit(_ line: ArraySlice<UInt8>, into items: inout [Item]) -> Bool {
        if line.elementsEqual(Self.exitWord) { items.append(.exit); return true }
        if !line.isEmpty { items.append(.message(Array(line))) }
        return false
    }

    /// How many trailing bytes are the start of a UTF-8 sequence still missing bytes.
    static func incompleteUTF8Suffix(_ bytes: [UInt8]) -> Int {
        var i = bytes.count - 1
        var continuation = 0
        while i >= 0, continuation < 3, bytes[i] & 0xC0 == 0x80 { continuation += 1; i -= 1 }
        guard i >= 0 else { return 0 }
        let lead = bytes[i]
        let needed: Int
        switch lead {
        case 0xC2...0xDF: needed = 1
        case 0xE0...0xEF: needed = 2
        case 0xF0...0xF4: needed = 3
        default: return 0
        }
        return continuation < needed ? continuation + 1 : 0
    }
}
