import ChatCore

/// Makes bytes that came from the network safe to print on a terminal (SPEC.md §3.3):
/// a member's text must never move the cursor, recolour the screen or retitle the window.
///
/// Invalid UTF-8 becomes U+FFFD; every Unicode Cc character but TAB becomes visible in
/// `cat -v` notation: C0 as `^@`…`^_` (ESC is `^[`), DEL as `^?`, C1 as `M-^@`…`M-^_`.
/// The bidirectional embeddings, overrides and isolates and the line/paragraph separators
/// (`TextCheck.isLayoutControl`) become `<U+202E>` and the like: a tcp_chat node refuses
/// them, but the original server relays anything, and they would reorder or split the line.
public enum Sanitizer {
    public static func displayText<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        // Fast path: printable ASCII (and TAB) needs no work.
        if bytes.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        // Swift's decoder replaces each ill-formed sequence (overlongs, surrogates, bytes
        // past U+10FFFF, truncated sequences) with U+FFFD.
        let decoded = String(decoding: bytes, as: UTF8.self)
        var out = String.UnicodeScalarView()
        for scalar in decoded.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x09:
                out.append(scalar)
            case 0x00...0x1F:
                appendCaret(UInt8(v), to: &out)
            case 0x7F:
                out.append(contentsOf: "^?".unicodeScalars)
            case 0x80...0x9F:
                out.append(contentsOf: "M-".unicodeScalars)
                appendCaret(UInt8(v - 0x80), to: &out)
            case _ where TextCheck.isLayoutControl(v):
                out.append(contentsOf: "<U+\(String(v, radix: 16, uppercase: true))>".unicodeScalars)
            default:
                out.append(scalar)
            }
        }
        return String(out)
    }

    private static func appendCaret(_ c0: UInt8, to out: inout String.UnicodeScalarView) {
        out.append("^")
        out.append(Unicode.Scalar(c0 + 0x40))
    }
}
