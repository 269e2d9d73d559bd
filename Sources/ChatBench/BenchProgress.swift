/// What a run reports once a second while it runs.
public struct BenchProgress: Equatable, Sendable {
    public enum Phase: String, Sendable {
        case connect, warmup, measure, drain
    }

    /// Whole seconds since the start.
    public var elapsedSeconds: Int
    public var phase: Phase
    /// Clients logged in so far, out of `clients`.
    public var ready: Int
    public var clients: Int
    /// Over the last interval.
    public var sentPerSecond: Double
    public var deliveredPerSecond: Double
    /// p99 latency of the last interval's deliveries, microseconds (nil when none arrived).
    public var p99Us: Double?
    /// Trouble so far (lost is only known at the end).
    public var duplicated: UInt64
    public var reordered: UInt64
    public var garbled: UInt64
    public var errors: UInt64

    public init(elapsedSeconds: Int, phase: Phase, ready: Int, clients: Int, sentPerSecond: Double,
                deliveredPerSecond: Double, p99Us: Double?, duplicated: UInt64 = 0, reordered: UInt64 = 0,
                garbled: UInt64 = 0, errors: UInt64 = 0) {
        self.elapsedSeconds = elapsedSeconds
        self.phase = phase
        self.ready = ready
        self.clients = clients
        self.sentPerSecond = sentPerSecond
        self.deliveredPerSecond = deliveredPerSecond
        self.p99Us = p99Us
        self.duplicated = duplicated
        self.reordered = reordered
        self.garbled = garbled
        self.errors = errors
    }

    /// `t=3s measure sent=86.1k/s delivered=8.61M/s p99=3.24ms`, and the trouble when there is some.
    public var line: String {
        var s = "t=\(elapsedSeconds)s \(phase.rawValue)"
        if phase == .connect {
            s += " logged in \(ready)/\(clients)"
        } else {
            s += " sent=\(Fmt.si(sentPerSecond))/s delivered=\(Fmt.si(deliveredPerSecond))/s"
            s += " p99=" + (p99Us.map { Fmt.ms($0) + "ms" } ?? "-")
        }
        if duplicated > 0 { s += " duplicated=\(duplicated)" }
        if reordered > 0 { s += " reordered=\(reordered)" }
        if garbled > 0 { s += " garbled=\(garbled)" }
        if errors > 0 { s += " errors=\(errors)" }
        return s
    }
}
