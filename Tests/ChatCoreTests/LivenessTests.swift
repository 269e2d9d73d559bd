import Testing
@testable import ChatCore

/// Local health (`Liveness`, docs/cluster-protocol.md §5): a node's own lag is credited to
/// its peers and stretches its timeouts; punctual ticks bring the timeouts back.
@Suite struct LivenessTests {
    @Test func punctualTicksCostNothing() {
        var l = Liveness(tickMs: 100)
        for t in stride(from: UInt64(1000), through: 10_000, by: 100) { #expect(l.tick(nowMs: t) == 0) }
        // A little jitter is not lag.
        #expect(l.tick(nowMs: 10_150) == 0)
        #expect(l.score == 0)
        #expect(l.stretched(3000) == 3000)
        #expect(l.stalledMs == 0)
    }

    @Test func aStallIsReportedAndStretchesTimeouts() {
        var l = Liveness(tickMs: 100)
        _ = l.tick(nowMs: 1000)
        // The loop did not run for 2 s: 1.9 s past the tick's due time.
        #expect(l.tick(nowMs: 3000) == 1900)
        #expect(l.score == 1)
        #expect(l.stretched(3000) == 6000)
        #expect(l.stalledMs == 1900)
        // Late again and again: the score rises to its cap, no further.
        var t: UInt64 = 3000
        for _ in 0..<20 { t += 300; _ = l.tick(nowMs: t) }
        #expect(l.score == Liveness.maxScore)
        #expect(l.stretched(3000) == 3000 * UInt64(1 + Liveness.maxScore))
    }

    @Test func punctualTicksRecoverOneStepPerRun() {
        var l = Liveness(tickMs: 100)
        var t: UInt64 = 1000
        _ = l.tick(nowMs: t)
        for _ in 0..<3 { t += 400; _ = l.tick(nowMs: t) }
        #expect(l.score == 3)
        for _ in 0..<(Liveness.recoveryTicks - 1) { t += 100; _ = l.tick(nowMs: t) }
        #expect(l.score == 3)
        t += 100; _ = l.tick(nowMs: t)
        #expect(l.score == 2)
        for _ in 0..<(2 * Liveness.recoveryTicks) { t += 100; _ = l.tick(nowMs: t) }
        #expect(l.score == 0)
    }

    @Test func offForSimulationsThatJumpTheClock() {
        var l = Liveness(tickMs: 0)
        _ = l.tick(nowMs: 0)
        #expect(l.tick(nowMs: 60_000) == 0)
        #expect(l.score == 0 && l.stalledMs == 0)
    }

    @Test func stretchingNeverOverflows() {
        var l = Liveness(tickMs: 100)
        var t: UInt64 = 0
        for _ in 0..<20 { t += 1000; _ = l.tick(nowMs: t) }
        #expect(l.stretched(UInt64.max / 3) > 0)
    }
}
