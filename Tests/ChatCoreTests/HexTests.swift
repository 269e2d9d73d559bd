import Testing
@testable import ChatCore

@Suite struct HexTests {
    @Test func bytesAreTwoLowercaseDigitsEach() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func aUInt64IsSixteenDigitsMostSignificantFirst() {
        #expect(Hex.encode(UInt64(0)) == "0000000000000000")
        #expect(Hex.encode(UInt64(0x2a)) == "000000000000002a")
        #expect(Hex.encode(UInt64(0x0123456789abcdef)) == "0123456789abcdef")
        #expect(Hex.encode(UInt64.max) == "ffffffffffffffff")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let v = UInt64.random(in: .min ... .max, using: &rng)
            #expect(UInt64(Hex.encode(v), radix: 16) == v)
            #expect(NodeID(Hex.encode(v)) != nil)
        }
    }
}
