import ChatCore

/// The node's answer to `<USERNAME>_<CHAT_ID>` (docs/protocol.md §1), read from the first bytes it sends.
public enum HandshakeReply: Equatable, Sendable {
    /// `200`. `framing` is nil when the reply was exactly `200` so far: a line node's `\n`
    /// may still be on its way. `rest` holds message bytes that came in the same read.
    case accepted(framing: Framing?, rest: [UInt8])
    /// `403`: the username is taken.
    case nameTaken
    /// `400`: the node found the handshake malformed.
    case malformed
    /// Anything else; the bytes are kept for the error message.
    case unexpected([UInt8])

    private static let ok = Array("200".utf8), taken = Array("403".utf8), bad = Array("400".utf8)

    /// Parses what has arrived so far; nil means "need more bytes".
    public static func parse(_ buffer: [UInt8]) -> HandshakeReply? {
        let codes = [ok, taken, bad]
        if buffer.count < 3 {
            return codes.contains(where: { $0.starts(with: buffer) }) ? nil : .unexpected(buffer)
        }
        let code = Array(buffer.prefix(3))
        let rest = Array(buffer.dropFirst(3))
        switch code {
        case taken: return .nameTaken
        case bad: return .malformed
        case ok:
            switch rest.first {
            case nil:
                return .accepted(framing: nil, rest: [])
            case UInt8(ascii: "\n"):
                return .accepted(framing: .line, rest: Array(rest.dropFirst()))
            case UInt8(ascii: "\r") where rest.count == 1:
                return .accepted(framing: nil, rest: [])   // "200\r": wait for the "\n" in the stream
            case UInt8(ascii: "\r") where rest[1] == UInt8(ascii: "\n"):
                return .accepted(framing: .line, rest: Array(rest.dropFirst(2)))
            default:
                // The original server sends `200` bare and may have a message right behind it.
                return .accepted(framing: .raw, rest: rest)
            }
        default:
            return .unexpected(buffer)
        }
    }
}
