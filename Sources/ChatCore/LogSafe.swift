/// Text from the wire made safe for an operator's terminal and logs: control characters
/// (C0, DEL, C1, ESC included), bidi overrides and isolates, and line and paragraph
/// separators are shown as `\u{…}` escapes, and the text is cut to `max` characters with
/// `…` at the end. Every reason, address or name a peer or client sent goes through this
/// before it is logged or printed (docs/security.md).
public enum LogSafe {
    public static func text<S: StringProtocol>(_ s: S, max: Int = 200) -> String {
        var out = ""
        var n = 0
        for u in s.unicodeScalars {
            if n >= max { out += "…"; break }
            n += 1
            if isUnsafe(u) {
                out += "\\u{" + String(u.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// Bytes that may not be UTF-8: invalid sequences become U+FFFD first.
    public static func bytes<C: Collection>(_ b: C, max: Int = 200) -> String where C.Element == UInt8 {
        text(String(decoding: b.prefix(max * 4), as: UTF8.self), max: max)
    }

    /// Scalars a terminal would act on or that reorder what it shows.
    public static func isUnsafe(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        // The marks too: harmless in chat, but an operator's log shows them escaped.
        case 0x200E, 0x200F, 0x061C: return true
        default: return TextCheck.isLayoutControl(u.value)
        }
    }
}
