/// The text of every message `tcp_chat bench` sends, byte for byte the format of the C
/// harness's loadgen (shared/bench/loadgen.c), so either tool can read the other's traffic:
///
/// ```
/// #  TTTTTTTTTTTTTTTT  SSSSSSSS  QQQQQQQQ  F  CC  xxxx…x  ~
/// 0  1                17        25        33 34  36      size-1
/// ```
///
/// `T` the send time (CLOCK_MONOTONIC nanoseconds), `S` the sender id, `Q` the sender's
/// sequence number, all lowercase hex; `F` is `W` (warmup) or `M` (measured); `CC` is the
/// low byte of the sum of bytes 1…33, in hex; `x` padding up to `size - 1`, then `~`.
/// Every payload is exactly `size` bytes, valid UTF-8 with no control character, so a node
/// relays it untouched.
public enum BenchPayload {
    /// `#`, 16 + 8 + 8 hex digits, the flag and 2 checksum digits.
    public static let headerBytes = 36
    /// The header and the closing `~`.
    public static let minSize = headerBytes + 1

    /// What a payload says.
    public struct Fields: Equatable, Sendable {
        public var sendTimeNs: UInt64
        public var sender: UInt32
        public var sequence: UInt32
        public var measured: Bool

        public init(sendTimeNs: UInt64, sender: UInt32, sequence: UInt32, measured: Bool) {
            self.sendTimeNs = sendTimeNs
            self.sender = sender
            self.sequence = sequence
            self.measured = measured
        }
    }

    @inline(__always)
    static func hexDigit(_ v: UInt64) -> UInt8 {
        let d = UInt8(truncatingIfNeeded: v & 15)
        return d < 10 ? 0x30 &+ d : 0x57 &+ d
    }

    @inline(__always)
    static func putHex(_ p: UnsafeMutableRawPointer, _ value: UInt64, digits: Int) {
        var v = value
        var i = digits - 1
        while i >= 0 {
            p.storeBytes(of: hexDigit(v), toByteOffset: i, as: UInt8.self)
            v >>= 4
            i -= 1
        }
    }

    /// Writes one payload of exactly `size` bytes (`size >= minSize`) at `p`.
    @inline(__always)
    public static func encode(into p: UnsafeMutableRawPointer, size: Int, fields f: Fields) {
        p.storeBytes(of: 0x23, as: UInt8.self)  // '#'
        putHex(p + 1, f.sendTimeNs, digits: 16)
        putHex(p + 17, UInt64(f.sender), digits: 8)
        putHex(p + 25, UInt64(f.sequence), digits: 8)
        p.storeBytes(of: f.measured ? 0x4D : 0x57, toByteOffset: 33, as: UInt8.self)  // 'M' / 'W'
        let sum = checksum(UnsafeRawPointer(p))
        putHex(p + 34, UInt64(sum), digits: 2)
        if size - 1 > headerBytes { (p + headerBytes).initializeMemory(as: UInt8.self, repeating: 0x78, count: size - 1 - headerBytes) }
        p.storeBytes(of: 0x7E, toByteOffset: size - 1, as: UInt8.self)  // '~'
    }

    /// One payload as bytes (tests, the unusual path).
    public static func encode(size: Int, fields: Fields) -> [UInt8] {
        precondition(size >= minSize, "a payload is at least \(minSize) bytes")
        return [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            encode(into: UnsafeMutableRawPointer(buf.baseAddress!), size: size, fields: fields)
            count = size
        }
    }

    /// Reads the payload of `size` bytes at `p`; nil when it is not one of ours or was
    /// damaged (framing, hex digits, flag or checksum wrong).
    @inline(__always)
    public static func decode(_ p: UnsafeRawPointer, size: Int) -> Fields? {
        guard size >= minSize, p.load(as: UInt8.self) == 0x23, p.load(fromByteOffset: size - 1, as: UInt8.self) == 0x7E,
              let t1 = hex8(p + 1), let t2 = hex8(p + 9), let sender = hex8(p + 17), let seq = hex8(p + 25),
              let c1 = hexValue(p.load(fromByteOffset: 34, as: UInt8.self)),
              let c2 = hexValue(p.load(fromByteOffset: 35, as: UInt8.self))
        else { return nil }
        let flag = p.load(fromByteOffset: 33, as: UInt8.self)
        guard flag == 0x4D || flag == 0x57, checksum(p) == (c1 << 4 | c2) else { return nil }
        return Fields(sendTimeNs: UInt64(t1) << 32 | UInt64(t2), sender: sender, sequence: seq, measured: flag == 0x4D)
    }

    public static func decode(_ bytes: [UInt8]) -> Fields? {
        bytes.withUnsafeBytes { decode($0.baseAddress!, size: $0.count) }
    }

    /// The low byte of the sum of bytes 1…33 (timestamp, sender, sequence, flag).
    @inline(__always)
    static func checksum(_ p: UnsafeRawPointer) -> UInt8 {
        let s = byteSum8(p + 1) &+ byteSum8(p + 9) &+ byteSum8(p + 17) &+ byteSum8(p + 25)
            &+ UInt32(p.load(fromByteOffset: 33, as: UInt8.self))
        return UInt8(truncatingIfNeeded: s)
    }

    /// Sum of 8 bytes, SWAR.
    @inline(__always)
    static func byteSum8(_ p: UnsafeRawPointer) -> UInt32 {
        let w = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        let s = (w & 0x00FF_00FF_00FF_00FF) &+ ((w >> 8) & 0x00FF_00FF_00FF_00FF)
        return UInt32(truncatingIfNeeded: (s &* 0x0001_0001_0001_0001) >> 48)
    }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        if b >= 0x30 && b <= 0x39 { return b &- 0x30 }
        if b >= 0x61 && b <= 0x66 { return b &- 0x57 }
        return nil
    }

    /// Eight lowercase hex digits (the first most significant) as a number, SWAR; nil if any
    /// byte is not `0-9a-f`.
    @inline(__always)
    static func hex8(_ p: UnsafeRawPointer) -> UInt32? {
        @inline(__always) func b8(_ x: UInt64) -> UInt64 { 0x0101_0101_0101_0101 &* x }
        let x = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        // With every byte < 0x80 none of these additions carries into the next byte.
        let ge0 = x &+ b8(0x80 - 0x30), gt9 = x &+ b8(0x7F - 0x39)
        let gea = x &+ b8(0x80 - 0x61), gtf = x &+ b8(0x7F - 0x66)
        let ok = ((ge0 & ~gt9) | (gea & ~gtf)) & b8(0x80)
        guard ok == b8(0x80), x & b8(0x80) == 0 else { return nil }
        var v = (x & b8(0x0F)) &+ 9 &* ((x >> 6) & b8(0x01))
        v = ((v & 0x000F_000F_000F_000F) << 4) | ((v & 0x0F00_0F00_0F00_0F00) >> 8)
        v = ((v & 0x0000_00FF_0000_00FF) << 8) | ((v & 0x00FF_0000_00FF_0000) >> 16)
        return UInt32(truncatingIfNeeded: ((v & 0xFFFF) << 16) | ((v >> 32) & 0xFFFF))
    }
}
