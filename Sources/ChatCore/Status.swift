import Crypto

/// `tcp_chat status` (docs/operations.md): a connection whose first line is
/// `TCPCHAT-STATUS/1` gets `NONCE <hex>`, answers `AUTH <proof>` or `PUBLIC`, and receives
/// the node's view of the cluster as one JSON line. Room names and member counts are
/// shown only to a caller who proves the cluster secret (or when the cluster has none).
public enum StatusAccess {
    public static let requestLine = "TCPCHAT-STATUS/1"

    /// HMAC-SHA256(secret, "tcp_chat-status-v1|<nonce>") in lowercase hex.
    public static func proof(secret: [UInt8], nonce: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("tcp_chat-status-v1|\(nonce)".utf8),
                                                  using: SymmetricKey(data: secret))
        return Hex.encode(mac)
    }
}

/// A small JSON value and its serialisation (no Foundation in the node).
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSON])
    /// Keys keep their order.
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized == b.serialized }

    public var serialized: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (i, (k, v)) in pairs.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    private static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || (u.value >= 0x7F && u.value <= 0x9F) {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
