/// What one receiver has seen of one sender's measured messages: the checks of order,
/// duplicates and loss for one (receiver, sender) pair, as the C loadgen keeps them.
///
/// Sequence numbers are relative to the sender's first measured message (0, 1, 2, …).
/// `high` is one past the highest number seen; `window` has bit `d` set when message
/// `high - 1 - d` arrived, for the 64 messages below `high`. A message below `high` is
/// late (`reordered`) unless its bit is already set (`duplicate`); one more than 64 below
/// `high` cannot be told apart and counts as late.
public struct PairTracker: Equatable, Sendable {
    public private(set) var high: UInt32 = 0
    public private(set) var window: UInt64 = 0
    /// Distinct messages received (late ones included, duplicates not).
    public private(set) var unique: UInt32 = 0

    public enum Arrival: Equatable, Sendable {
        /// Higher than everything before: the normal case (gaps are settled at the end).
        case inOrder
        /// Lower than one already received, and new.
        case late
        /// Received before.
        case duplicate
    }

    public init() {}

    @inline(__always)
    public mutating func record(_ seq: UInt32) -> Arrival {
        if seq >= high {
            let shift = seq - high + 1
            window = (shift >= 64 ? 0 : window << UInt64(shift)) | 1
            high = seq + 1
            unique += 1
            return .inOrder
        }
        let d = high - 1 - seq
        if d < 64 {
            let bit: UInt64 = 1 << UInt64(d)
            if window & bit != 0 { return .duplicate }
            window |= bit
        }
        unique += 1
        return .late
    }

    /// Of `sent` measured messages, how many never arrived.
    public func lost(of sent: UInt32) -> UInt64 { sent > unique ? UInt64(sent - unique) : 0 }

    /// Of `sent`, how many lie after the last one that arrived (a tail cut off, e.g. by a
    /// drain that ended too early, rather than holes in the middle).
    public func lostTail(of sent: UInt32) -> UInt64 { sent > high ? UInt64(sent - high) : 0 }
}
