/// A node's identity for one run: 16 lowercase hex digits, drawn at start. A restarted node
/// is a new incarnation with a new id, so its old state can be dropped without ambiguity
/// (docs/cluster-protocol.md §2). Ids order the tie-breaks of the protocol.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let text: String

    public init?(_ text: String) {
        guard text.utf8.count == 16, text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return nil }
        self.text = text
    }

    public static func random<G: RandomNumberGenerator>(using g: inout G) -> NodeID {
        NodeID(Hex.encode(UInt64.random(in: .min ... .max, using: &g)))!
    }

    public static func < (a: NodeID, b: NodeID) -> Bool { a.text < b.text }
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
