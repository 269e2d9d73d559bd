import Testing
@testable import ChatClient

@Suite struct SanitizerTests {
    private func shown(_ bytes: [UInt8]) -> String { Sanitizer.displayText(bytes) }

    @Test func plainTextIsUnchanged() {
        #expect(shown(Array("bob - hi there".utf8)) == "bob - hi there")
        #expect(shown(Array("naïve 日本 🎉".utf8)) == "naïve 日本 🎉")
    }

    @Test func escapeBecomesCaretNotation() {
        #expect(shown(Array("a\u{1B}[2Jb".utf8)) == "a^[[2Jb")
        #expect(shown(Array("\u{1B}]0;pwned\u{07}".utf8)) == "^[]0;pwned^G")
    }

    @Test func c0ControlsAndDelAreVisibleButTabIsKept() {
        #expect(shown([0x00, 0x0D, 0x0A, 0x08]) == "^@^M^J^H")
        #expect(shown([0x61, 0x7F, 0x62]) == "a^?b")
        #expect(shown(Array("a\tb".utf8)) == "a\tb")
    }

    @Test func c1ControlsAreVisible() {
        // U+009B (CSI) encoded C2 9B would start an escape sequence on some terminals.
        #expect(shown([0x61, 0xC2, 0x9B, 0x32, 0x4A]) == "aM-^[2J")
        #expect(shown([0xC2, 0x80, 0xC2, 0x9F]) == "M-^@M-^_")
        #expect(shown([0xC2, 0xA0]) == "\u{A0}")   // NBSP is not Cc
    }

    @Test func invalidUTF8BecomesReplacementCharacter() {
        #expect(shown([0x61, 0xFF, 0x62]) == "a\u{FFFD}b")
        #expect(shown([0xC0, 0xAF]).allSatisfy { $0 == "\u{FFFD}" })        // overlong "/"
        #expect(shown([0xED, 0xA0, 0x80]).allSatisfy { $0 == "\u{FFFD}" })  // surrogate
        #expect(shown([0x61, 0xE6, 0x97]) == "a\u{FFFD}")                   // truncated
    }

    @Test func outputNeverHoldsAControlCharacter() {
        let every = (0...255).map { UInt8($0) } + [0xC2, 0x85, 0xC2, 0x9B]
        let text = shown(every)
        #expect(!text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || (0x7F...0x9F).contains($0.value) })
    }
}

@Suite struct SanitizerLayoutTests {
    /// Bidi embeddings, overrides, isolates and the separators are shown as `<U+XXXX>`, so
    /// a message can neither reorder the rest of the line nor start a new one.
    @Test func layoutControlsAreShownAsCodePoints() {
        #expect(Sanitizer.displayText(Array("mallory - \u{202E}bob - hi".utf8)) == "mallory - <U+202E>bob - hi")
        #expect(Sanitizer.displayText(Array("a\u{2028}bob - forged\u{2029}".utf8)) == "a<U+2028>bob - forged<U+2029>")
        for v in [0x2028, 0x2029] + Array(0x202A...0x202E) + Array(0x2066...0x2069) as [UInt32] {
            let shown = Sanitizer.displayText(Array(String(Unicode.Scalar(v)!).utf8))
            #expect(shown == "<U+\(String(v, radix: 16, uppercase: true))>")
        }
        // Neighbours and the plain right-to-left marks are text.
        for v in [0x2027, 0x202F, 0x2065, 0x206A, 0x200E, 0x200F, 0x061C] as [UInt32] {
            let s = String(Unicode.Scalar(v)!)
            #expect(Sanitizer.displayText(Array(s.utf8)) == s)
        }
    }
}
