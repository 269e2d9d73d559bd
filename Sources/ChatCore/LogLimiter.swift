/// Keeps refusals from flooding the log: each kind of event (its message) may be logged
/// `perSecond` times a second; the rest are counted, and the next line that gets through
/// says how many were suppressed. An attacker opening thousands of bad connections costs
/// the operator a few lines a second, not one line per connection.
public struct LogLimiter: Sendable {
    public let perSecond: Int
    private var windows: [String: (startMs: UInt64, logged: Int, suppressed: Int)] = [:]

    public init(perSecond: Int = Limits.refusalLogsPerSecond) { self.perSecond = perSecond }

    /// Nil when this line should be suppressed; else how many of its kind were suppressed
    /// since the last one logged.
    public mutating func admit(_ kind: String, nowMs: UInt64) -> Int? {
        var w = windows[kind] ?? (nowMs, 0, 0)
        if nowMs >= w.startMs + 1000 { w = (nowMs, 0, w.suppressed) }
        defer { windows[kind] = w }
        guard w.logged < perSecond else {
            w.suppressed += 1
            return nil
        }
        w.logged += 1
        let s = w.suppressed
        w.suppressed = 0
        return s
    }
}
