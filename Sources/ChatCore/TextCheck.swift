/// What is wrong with a message's text, if anything (SPEC.md §3.3–3.4).
public enum TextProblem: Equatable, Sendable {
    case invalidUTF8
    case controlCharacter
}

/// Validates message text in one pass: well-formed UTF-8 (no overlongs, surrogates or
/// code points past U+10FFFF) with no Unicode Cc character except TAB — that is no C0
/// byte but 0x09, no DEL, and no C1 (U+0080…U+009F, encoded C2 80…C2 9F).
public enum TextCheck {
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
