/// A session's pacing by the rate limit (docs/protocol.md §2, §5): the token bucket, the pause
/// of reading while it refills, and the one "rate limited" notice a connection gets. The
/// runtime only stops and restarts reading and arms its timer for `resumeDeadline`; the TCP
/// and the WebSocket handler decide nothing else about pacing. Time is passed in (ms).
public struct RatePause: Sendable {
    private var rate: RateLimiter
    /// Reading is paused by the rate limit; silence does not count while paused.
    public private(set) var isPaused = false
    /// When the paused reader may go on; nil once it is due (`resumeIsDue`) or not paused.
    public private(set) var resumeDeadline: UInt64?
    private var told = false

    public init(rate: Int, nowMs: UInt64) {
        self.rate = RateLimiter(rate: rate, nowMs: nowMs)
    }

    /// Before the next message, with unread bytes buffered (`pending`): how long reading must
    /// pause for the bucket to hold a token, or nil to go on.
    public mutating func pauseNeeded(pending: Bool, nowMs: UInt64) -> UInt64? {
        guard !rate.isUnlimited && pending else { return nil }
        let wait = rate.waitMs(nowMs: nowMs)
        return wait > 0 ? wait : nil
    }

    /// Takes one token for a message handed on.
    @discardableResult
    public mutating func take(nowMs: UInt64) -> Bool { rate.take(nowMs: nowMs) }

    /// Reading stops for `ms`.
    public mutating func pause(for ms: UInt64, nowMs: UInt64) {
        isPaused = true
        resumeDeadline = nowMs + ms
    }

    /// True the first time only: the client is told once per connection that it is rate limited.
    public mutating func shouldTell() -> Bool {
        if told { return false }
        told = true
        return true
    }

    /// The timer fired: whether the pause is over (then the handler processes again).
    public mutating func resumeIsDue(nowMs: UInt64) -> Bool {
        guard let r = resumeDeadline, nowMs >= r else { return false }
        resumeDeadline = nil
        return true
    }

    /// Processing got through without pausing: true if reading was paused and must restart.
    public mutating func endPause() -> Bool {
        guard isPaused else { return false }
        isPaused = false
        resumeDeadline = nil
        return true
    }
}
