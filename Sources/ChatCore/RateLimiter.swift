/// A token bucket: `rate` messages per second with a burst of 2×`rate` (docs/protocol.md §5, `--rate-limit`).
/// Time is passed in, in milliseconds, so the bucket is pure and testable.
public struct RateLimiter: Sendable {
    public let rate: Int
    private var tokens: Double
    private var lastMs: UInt64
    public var capacity: Double { Double(rate * 2) }

    public init(rate: Int, nowMs: UInt64) {
        self.rate = rate
        tokens = Double(rate * 2)
        lastMs = nowMs
    }

    public var isUnlimited: Bool { rate <= 0 }

    /// Takes one token if there is one.
    public mutating func take(nowMs: UInt64) -> Bool {
        if isUnlimited { return true }
        refill(nowMs)
        if tokens >= 1 { tokens -= 1; return true }
        return false
    }

    /// Milliseconds until a token is available (0 if one is).
    public mutating func waitMs(nowMs: UInt64) -> UInt64 {
        if isUnlimited { return 0 }
        refill(nowMs)
        if tokens >= 1 { return 0 }
        return UInt64(((1 - tokens) * 1000 / Double(rate)).rounded(.up))
    }

    private mutating func refill(_ nowMs: UInt64) {
        if nowMs > lastMs {
            tokens = min(capacity, tokens + Double(nowMs - lastMs) * Double(rate) / 1000)
            lastMs = nowMs
        }
    }
}
