import Testing
@testable import ChatCore

@Suite struct TextCheckTests {
    func check(_ bytes: [UInt8]) -> TextProblem? { TextCheck.problem(in: bytes) }

    @Test func plainAndUnicodeTextPass() {
        #expect(check(Array("hello, world".utf8)) == nil)
        #expect(check(Array("tab\tok".utf8)) == nil)
        #expect(check(Array("привет 你好 😀 é".utf8)) == nil)
    }

    @Test(arguments: [[0x1B], [0x00], [0x07], [0x7F], [0x0D], [0xC2, 0x85], [0xC2, 0x9F]] as [[UInt8]])
    func controlCharactersAreRefused(_ c: [UInt8]) {
        #expect(check(Array("a".utf8) + c + Array("b".utf8)) == .controlCharacter)
    }

    /// Every bidirectional embedding, override and isolate and both separators are refused
    /// as control characters, alone and inside text; their neighbours pass.
    @Test func layoutControlsAreRefusedAndTheirNeighboursPass() {
        let refused: [UInt32] = [0x2028, 0x2029] + Array(0x202A...0x202E) + Array(0x2066...0x2069)
        for v in refused {
            let c = Array(String(Unicode.Scalar(v)!).utf8)
            #expect(c.count == 3)
            #expect(check(c) == .controlCharacter, "U+\(String(v, radix: 16)) alone")
            #expect(check(Array("abc ".utf8) + c + Array(" def".utf8)) == .controlCharacter, "U+\(String(v, radix: 16)) in text")
            #expect(TextCheck.isLayoutControl(v))
        }
        // Neighbours of each range, and the bidi marks right-to-left text needs.
        let allowed: [UInt32] = [0x2027, 0x202F, 0x2065, 0x206A, 0x200E, 0x200F, 0x061C, 0x2030, 0x2060, 0x2064]
        for v in allowed {
            let c = Array(String(Unicode.Scalar(v)!).utf8)
            #expect(check(c) == nil, "U+\(String(v, radix: 16))")
            #expect(!TextCheck.isLayoutControl(v))
        }
        // The scan agrees with isLayoutControl over every 3-byte code point E2 80 80…E2 81 BF.
        for v in UInt32(0x2000)...0x207F {
            let c = Array(String(Unicode.Scalar(v)!).utf8)
            #expect((check(c) == .controlCharacter) == TextCheck.isLayoutControl(v), "U+\(String(v, radix: 16))")
        }
        #expect(check(Array("שלום \u{200F}world".utf8)) == nil)
    }

    /// `isLayoutControl` is exactly Unicode's Bidi_Control without the plain marks (LRM, RLM,
    /// ALM), plus the line and paragraph separators (Zl, Zp), over every scalar.
    @Test func layoutControlsAreWhatTheUnicodeDatabaseSays() {
        let marks: Set<UInt32> = [0x200E, 0x200F, 0x061C]
        var found: [UInt32] = []
        for v in UInt32(0)...0x10FFFF {
            guard let u = Unicode.Scalar(v) else { continue }
            let p = u.properties
            let byDatabase = (p.isBidiControl && !marks.contains(v))
                || p.generalCategory == .lineSeparator || p.generalCategory == .paragraphSeparator
            if byDatabase { found.append(v) }
            if byDatabase != TextCheck.isLayoutControl(v) { Issue.record("U+\(String(v, radix: 16))"); break }
        }
        #expect(found == [0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069])
    }

    @Test func nbspAfterC1IsFine() {
        #expect(check([0xC2, 0xA0]) == nil)
    }

    @Test(arguments: [
        [0xFF], [0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xC3], [0xF0, 0x9F, 0x98],
    ] as [[UInt8]])
    func invalidUTF8IsRefused(_ bytes: [UInt8]) {
        #expect(check(bytes) == .invalidUTF8)
    }

    @Test func agreesWithStandardLibraryOnRandomBytes() {
        var rng = SplitMix(seed: 42)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 8)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            let problem = check(bytes)
            #expect((problem != .invalidUTF8) == valid, "bytes \(bytes)")
        }
    }
}

/// A small deterministic PRNG for reproducible random tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

/// A peer's `MSG` goes through the same check as a client's text: a bidi override or a line
/// separator from another node is refused (the line is malformed) and reaches no member.
@Suite struct TextCheckPeerPathTests {
    /// Code points as numbers, so the test log itself stays free of them.
    @Test(arguments: [0x202E, 0x2028, 0x2029, 0x202A, 0x2066, 0x2069] as [UInt32])
    func peerChatWithLayoutControlIsRefused(_ v: UInt32) throws {
        let c = String(Unicode.Scalar(v)!)
        let net = SimNetwork(nodes: 2, seed: 45)
        net.linkUp(0, 1)
        net.deliverAll()
        let bob = net.login(1, "bob", "r")
        net.deliverAll()
        let line = "MSG \(net[0].id) 1 r mallory hi \(c)kcab si bob"
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(line: Substring(line), from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        #expect(throws: PeerCodecError.self) {
            try net[1].cluster.receive(bytesOf: line, from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        }
        #expect(bob.chatLines.isEmpty)
        // The neighbours outside the ranges still cross.
        try net[1].cluster.receive(bytesOf: "MSG \(net[0].id) 1 r mallory a\u{202F}b\u{2027}c", from: net[0].id, nowMs: 0, wallMs: net.wallMs(1))
        #expect(bob.chatLines == ["mallory - a\u{202F}b\u{2027}c\n"])
    }
}
