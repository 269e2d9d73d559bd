/// What is wrong with a message's text, if anything (docs/protocol.md §3–4).
public enum TextProblem: Equatable, Sendable {
    case invalidUTF8
    case controlCharacter
}

/// Validates message text in one pass: well-formed UTF-8 (no overlongs, surrogates or
/// code points past U+10FFFF) with no Unicode Cc character except TAB — that is no C0
/// byte but 0x09, no DEL, and no C1 (U+0080…U+009F, encoded C2 80…C2 9F) — and none of
/// the characters that move or reorder text on a terminal without being Cc (see
/// `isLayoutControl`). Both count as `.controlCharacter`: the same notice, the same rule
/// for a client's text and a peer's `MSG`.
public enum TextCheck {
    /// The bidirectional embeddings, overrides and isolates (U+202A…U+202E, U+2066…U+2069)
    /// and the line and paragraph separators (U+2028, U+2029). A message holding them can
    /// reverse the rest of a receiver's line, or start what looks like a new line, and so
    /// forge `bob - …` or reorder what others wrote. Refused by the node; shown as
    /// `<U+XXXX>` by the terminal client (Sanitizer.swift). The plain marks LRM, RLM and
    /// ALM (U+200E, U+200F, U+061C) stay allowed: they change no order beyond their own
    /// neighbours and right-to-left text needs them.
    public static func isLayoutControl(_ scalar: UInt32) -> Bool {
        (0x2028...0x202E).contains(scalar) || (0x2066...0x2069).contains(scalar)
    }

    public static func problem(in text: UnsafeRawBufferPointer) -> TextProblem? {
        var control = false
        var i = 0
        let n = text.count
        while i < n {
            let b = text[i]
            if b < 0x80 {
                if (b < 0x20 && b != 0x09) || b == 0x7F { control = true }
                i += 1
                continue
            }
            let len: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: len = 2
            case 0xE0: len = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: len = 3
            case 0xED: len = 3; upper = 0x9F
            case 0xF0: len = 4; lower = 0x90
            case 0xF1...0xF3: len = 4
            case 0xF4: len = 4; upper = 0x8F
            default: return .invalidUTF8
            }
            guard i + len <= n else { return .invalidUTF8 }
            let b1 = text[i + 1]
            guard b1 >= lower && b1 <= upper else { return .invalidUTF8 }
            if len > 2 {
                guard text[i + 2] & 0xC0 == 0x80 else { return .invalidUTF8 }
                if len > 3 { guard text[i + 3] & 0xC0 == 0x80 else { return .invalidUTF8 } }
            }
            if b == 0xC2 && b1 <= 0x9F { control = true }
            // U+2028…U+202E are E2 80 A8…AE; U+2066…U+2069 are E2 81 A6…A9 (isLayoutControl).
            if b == 0xE2 {
                let b2 = text[i + 2]
                if (b1 == 0x80 && b2 >= 0xA8 && b2 <= 0xAE) || (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9) { control = true }
            }
            i += len
        }
        return control ? .controlCharacter : nil
    }

    /// Any collection of bytes; contiguous ones (arrays, slices, a native String's UTF-8)
    /// are read in place, others copied once.
    public static func problem<C: Collection>(in text: C) -> TextProblem? where C.Element == UInt8 {
        if let p = text.withContiguousStorageIfAvailable({ problem(in: UnsafeRawBufferPointer($0)) }) { return p }
        return Array(text).withUnsafeBytes { problem(in: $0) }
    }
}
