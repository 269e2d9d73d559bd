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
