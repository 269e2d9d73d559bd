import Testing
@testable import ChatBench
import TestSupport

@Suite struct BenchPayloadTests {
    let fields = BenchPayload.Fields(sendTimeNs: 0x0123_4567_89AB_CDEF, sender: 42, sequence: 7, measured: true)

    @Test func encodesTheCLoadgenFormatByteForByte() {
        // The same bytes loadgen.c's build_payload writes (checksum = sum of bytes 1…33 & 0xff).
        let p = BenchPayload.encode(size: 40, fields: fields)
        #expect(String(decoding: p, as: UTF8.self) == "#0123456789abcdef0000002a00000007Me9xxx~")
    }

    @Test(arguments: [37, 38, 64, 400, 4096])
    func roundTripsAtEverySize(size: Int) {
        let p = BenchPayload.encode(size: size, fields: fields)
        #expect(p.count == size)
        #expect(p.first == UInt8(ascii: "#") && p.last == UInt8(ascii: "~"))
        #expect(BenchPayload.decode(p) == fields)
        #expect(p.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "printable ASCII: a node relays it untouched")
    }

    @Test func roundTripsExtremesAndTheWarmupFlag() {
        for f in [BenchPayload.Fields(sendTimeNs: 0, sender: 0, sequence: 0, measured: false),
                  BenchPayload.Fields(sendTimeNs: .max, sender: .max, sequence: .max, measured: true),
                  BenchPayload.Fields(sendTimeNs: 1_700_000_000_123_456_789, sender: 99_999, sequence: 1 << 31, measured: false)] {
            #expect(BenchPayload.decode(BenchPayload.encode(size: 64, fields: f)) == f)
        }
    }

    @Test func everyDamagedHeaderByteIsCaught() {
        let good = BenchPayload.encode(size: 64, fields: fields)
        for i in 0..<BenchPayload.headerBytes {
            for replacement: UInt8 in [UInt8(ascii: "0"), UInt8(ascii: "f"), UInt8(ascii: "g"), UInt8(ascii: "A"), 0xC3] where replacement != good[i] {
                var bad = good
                bad[i] = replacement
                #expect(BenchPayload.decode(bad) == nil, "byte \(i) changed to \(replacement) went unnoticed")
            }
        }
        var noTilde = good
        noTilde[63] = UInt8(ascii: "x")
        #expect(BenchPayload.decode(noTilde) == nil)
    }

    @Test func aPayloadCutShortOrShiftedIsRefused() {
        let good = BenchPayload.encode(size: 64, fields: fields)
        #expect(BenchPayload.decode(Array(good.dropLast())) == nil)
        #expect(BenchPayload.decode(Array(good.dropFirst()) + [UInt8(ascii: "~")]) == nil)
        #expect(BenchPayload.decode(Array(good.prefix(36))) == nil)
    }

    @Test func hexDecodingMatchesTheStandardLibrary() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let v = UInt32.random(in: .min ... .max, using: &rng)
            var s = String(v, radix: 16)
            s = String(repeating: "0", count: 8 - s.count) + s
            let bytes = Array(s.utf8)
            #expect(bytes.withUnsafeBytes { BenchPayload.hex8($0.baseAddress!) } == v)
        }
        for bad in ["0000000G", "-0000000", "0000 000", "ABCDEF01", "0000000/", "0000000:", "0000000`"] {
            #expect(Array(bad.utf8).withUnsafeBytes { BenchPayload.hex8($0.baseAddress!) } == nil, "\(bad)")
        }
    }
}
