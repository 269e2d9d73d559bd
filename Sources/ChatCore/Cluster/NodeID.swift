/// A node's identity for one run: 16 lowercase hex digits, drawn at start. A restarted node
/// is a new incarnation with a new id, so its old state can be dropped without ambiguity
/// (docs/cluster-protocol.md §2). Ids order the tie-breaks of the protocol.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The id's 64 bits. Held as a number, not as its text: every message carries ids, and
    /// a node hashes and compares them per message and per neighbor (docs/scaling.md).
    public let value: UInt64

    public init(value: UInt64) { self.value = value }

    /// Parses exactly 16 lowercase hex digits.
    public init?(_ text: String) {
        var v: UInt64 = 0
        var n = 0
        for c in text.utf8 {
            n += 1
            guard n <= 16, let d = NodeID.digit(c) else { return nil }
            v = v << 4 | d
        }
        guard n == 16 else { return nil }
        value = v
    }

    /// Parses exactly 16 lowercase hex digits from bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        var v: UInt64 = 0
        for c in bytes {
            guard let d = NodeID.digit(c) else { return nil }
            v = v << 4 | d
        }
        value = v
    }

    @inline(__always) static func digit(_ c: UInt8) -> UInt64? {
        switch c {
        case 0x30...0x39: return UInt64(c - 0x30)
        case 0x61...0x66: return UInt64(c - 0x61 + 10)
        default: return nil
        }
    }

    /// The 16 lowercase hex digits.
    public var text: String { Hex.encode(value) }

    public static func random<G: RandomNumberGenerator>(using g: inout G) -> NodeID {
        NodeID(value: UInt64.random(in: .min ... .max, using: &g))
    }

    /// Fixed-width lowercase hex orders as its number does.
    public static func < (a: NodeID, b: NodeID) -> Bool { a.value < b.value }
    public var description: String { text }
}

/// A hybrid logical clock (Kulkarni et al.): wall-clock milliseconds in the high 48 bits and a
/// counter in the low 16, never going backwards and always past every timestamp received.
/// Claim timestamps come from it, so "the earlier claim" is well defined across nodes.
public struct HybridClock: Sendable {
    public private(set) var last: UInt64 = 0

    public init() {}

    public static func pack(ms: UInt64, counter: UInt64) -> UInt64 { (ms << 16) | (counter & 0xFFFF) }

    /// A new timestamp, later than every one issued or seen.
    public mutating func now(wallMs: UInt64) -> UInt64 {
        let physical = HybridClock.pack(ms: wallMs, counter: 0)
        last = max(physical, last + 1)
        return last
    }

    /// Takes in a timestamp from another node. One from further ahead than `Tunables.maxClockDriftMs` (a
    /// broken clock, or a hostile peer) is not followed: a clock dragged near the top of the
    /// range would issue timestamps the codec refuses (docs/cluster-protocol.md §5).
    public mutating func observe(_ ts: UInt64, wallMs: UInt64) {
        guard ts <= HybridClock.pack(ms: wallMs &+ Tunables.maxClockDriftMs, counter: 0xFFFF) else { return }
        if ts > last { last = ts }
    }
}
