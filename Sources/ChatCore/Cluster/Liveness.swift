/// A node's judgement of its own health, so that its own lag is never taken for its peers'
/// death (HashiCorp memberlist's Lifeguard, "local health awareness";
/// docs/cluster-protocol.md §5, docs/scaling.md).
///
/// A node learns that a peer is dead only from silence: nothing heard for the peer timeout.
/// But silence is also what a node sees when it is itself the slow one: a loop that is
/// starved of CPU (an overloaded host, a throttled container, a process stopped for a
/// while) runs its timers late, and when it runs again its timers fire before it has read
/// what its peers sent meanwhile. Two rules keep that from turning into false deaths:
///
/// - **Stalls do not count.** The housekeeping tick is due at times the runtime knows (every
///   `tickMs` while something waits, less often when idle: `Tunables.idleTickMs`). When it
///   runs late, the time the loop did not run (`stall`) is credited to every peer: their
///   silence during the stall is not evidence (`Cluster.tick`, `Node`'s link timeouts).
/// - **A lagging node is slow to accuse.** Each late tick raises a health score (0 to
///   `maxScore`); `recoveryTicks` tick periods of punctual ticks lower it by one. The peer
///   timeout and the claim deadlines are stretched by `1 + score`: a node that cannot keep
///   time gives its peers more of it, and a healthy one keeps the configured timeouts.
///
/// Pure arithmetic on the clock the runtime passes in; no I/O.
public struct Liveness: Sendable {
    /// The runtime's finest tick period (its housekeeping timer while something waits): a tick
    /// this late is a stall.
    public let tickMs: UInt64
    /// Current health score: 0 healthy, `maxScore` at its worst.
    public private(set) var score = 0
    /// Total milliseconds the loop was stalled, since start (for the runtime's link timers).
    public private(set) var stalledMs: UInt64 = 0
    private var lastTickMs: UInt64?
    /// Since when every tick came on time.
    private var punctualSinceMs: UInt64 = 0

    /// The highest score: timeouts stretch at most `1 + maxScore` times.
    public static let maxScore = Tunables.maxHealthScore
    /// Tick periods (`tickMs`) of punctual ticks that lower the score by one.
    public static let recoveryTicks = Tunables.healthRecoveryTicks

    /// `tickMs` 0 turns the judgement off (stalls are never reported, the score stays 0): for
    /// simulations, whose clock jumps between ticks by design.
    public init(tickMs: UInt64) { self.tickMs = tickMs }

    /// A tick is late when it comes this much after it was due: a whole period missed.
    public var lateMs: UInt64 { tickMs }

    /// Records a tick at `nowMs` that was due at `dueMs` (by default one `tickMs` after the
    /// last) and returns the stall: how long past its due time the loop did not run (0 when
    /// punctual). The caller credits it to every peer's silence.
    public mutating func tick(nowMs: UInt64, dueMs: UInt64? = nil) -> UInt64 {
        defer { lastTickMs = nowMs }
        guard tickMs > 0, let last = lastTickMs else {
            punctualSinceMs = nowMs
            return 0
        }
        let due = dueMs ?? last + tickMs
        let lag = nowMs > due ? nowMs - due : 0
        guard lag >= lateMs else {
            if nowMs >= punctualSinceMs + UInt64(Liveness.recoveryTicks) * tickMs {
                punctualSinceMs = nowMs
                if score > 0 { score -= 1 }
            }
            return 0
        }
        punctualSinceMs = nowMs
        if score < Liveness.maxScore { score += 1 }
        stalledMs += lag
        return lag
    }

    /// `baseMs` stretched by the node's own lag: `baseMs × (1 + score)`.
    public func stretched(_ baseMs: UInt64) -> UInt64 {
        let (r, overflow) = baseMs.multipliedReportingOverflow(by: UInt64(1 + score))
        return overflow ? UInt64.max / 2 : r
    }
}
