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

    /// An idle runtime ticks every `idleTickMs`, not every `tickMs`: a tick is late by how
    /// far it comes after the time it was due, not after the last tick.
    @Test func lateIsMeasuredFromWhenTheTickWasDue() {
        var l = Liveness(tickMs: 100)
        var t: UInt64 = 1000
        _ = l.tick(nowMs: t)
        for _ in 0..<20 { t += 500; #expect(l.tick(nowMs: t + 3, dueMs: t) == 0) }
        #expect(l.score == 0 && l.stalledMs == 0)
        // Due at t + 500, run at t + 1700: 1.2 s of stall.
        #expect(l.tick(nowMs: t + 1700, dueMs: t + 500) == 1200)
        #expect(l.score == 1)
        // Recovery counts time, not ticks: ten tick periods of punctual idle ticks.
        t += 1700
        for _ in 0..<1 { t += 500; _ = l.tick(nowMs: t, dueMs: t) }
        #expect(l.score == 1)
        for _ in 0..<2 { t += 500; _ = l.tick(nowMs: t, dueMs: t) }
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

    // MARK: In the cluster

    static let peer = NodeID("00000000000000aa")!

    /// A node (ticking every 100 ms, as the runtime does) with one neighbor, heard at `t`.
    static func node(tickMs: UInt64, t: UInt64) -> (Cluster, Hub) {
        let hub = Hub(limits: Limits())
        let c = Cluster(me: NodeID("00000000000000bb")!, advertise: "10.0.0.2:1", hub: hub, tickMs: tickMs)
        hub.cluster = c
        c.linkUp(peer, advertise: "10.0.0.1:1", nowMs: t)
        return (c, hub)
    }

    /// The node's own loop stalls for 4 s (longer than the peer timeout) and the peer said
    /// nothing meanwhile: not the peer's fault. Real silence afterwards still counts.
    @Test func aStalledNodeDoesNotDeclareItsPeersDead() {
        var t: UInt64 = 10_000
        let (c, hub) = Self.node(tickMs: 100, t: t)
        for _ in 0..<10 { t += 100; c.tick(nowMs: t) }
        t += 4000
        c.tick(nowMs: t)
        #expect(c.nodes[Self.peer] != nil, "a stall of this node's loop was taken for the peer's silence")
        // Punctual from now on: the peer timeout (stretched while the score is up) runs out.
        for _ in 0..<200 { t += 100; c.tick(nowMs: t) }
        #expect(c.nodes[Self.peer] == nil)
        _ = hub
        // The same jump where the runtime does not say how it ticks (a simulation): dead.
        var u: UInt64 = 10_000
        let (d, hub2) = Self.node(tickMs: 0, t: u)
        for _ in 0..<10 { u += 100; d.tick(nowMs: u) }
        u += 4000
        d.tick(nowMs: u)
        #expect(d.nodes[Self.peer] == nil)
        _ = hub2
    }

    /// An idle node ticks every `idleTickMs`; what waits on a finer deadline asks for
    /// prompt ticks (`needsPromptTick`) until it is settled: a suspected neighbor, a login's
    /// claim, a deferred HB.
    @Test func onlyWhatWaitsAsksForPromptTicks() throws {
        var t: UInt64 = 10_000
        let (c, hub) = Self.node(tickMs: 100, t: t)
        for _ in 0..<5 { t += 100; c.tick(nowMs: t) }
        #expect(!c.needsPromptTick)
        // A closed link: suspicion until the peer is dead.
        c.linkDown(Self.peer, nowMs: t)
        #expect(c.needsPromptTick)
        let suspect = Tunables.suspectHeartbeats * c.heartbeatMs
        while c.nodes[Self.peer] != nil && t < 20_000 { t += 100; c.tick(nowMs: t); if c.nodes[Self.peer] != nil { #expect(c.needsPromptTick) } }
        #expect(c.nodes[Self.peer] == nil && t <= 10_500 + suspect + 200)
        #expect(!c.needsPromptTick)
        // A login's claim waits for a live node's answer.
        c.linkUp(Self.peer, advertise: "10.0.0.1:1", nowMs: t)
        for _ in 0..<20 { t += 100; c.tick(nowMs: t) }
        #expect(!c.needsPromptTick)
        #expect(c.claim("ann") == .pending)
        #expect(c.needsPromptTick)
        let ts = try #require(c.pending["ann"]).ts
        try c.receive(line: Substring("REPLY \(Self.peer) 0 \(c.me) ann \(ts) yes"), from: Self.peer, nowMs: t, wallMs: t)
        #expect(c.pending["ann"] == nil)
        #expect(!c.needsPromptTick)
        // Link changes faster than the HB budget: the deferred HB waits for a tick.
        for k in 0..<10 { c.linkUp(NodeID(value: UInt64(0x100 + k)), advertise: "10.0.1.\(k):1", nowMs: t) }
        #expect(c.needsPromptTick)
        for _ in 0..<100 where c.needsPromptTick { t += 100; c.tick(nowMs: t) }
        #expect(!c.needsPromptTick)
    }

    /// Counts the HBs a cluster sends of its own (node 0xbb), with the wall-clock time of each.
    final class HeartbeatWire: ClusterTransport {
        var wallMs: UInt64 = 0
        var beats: [UInt64] = []
        func send(_ line: Payload, to neighbor: NodeID) {
            if String(decoding: UnsafeRawBufferPointer(rebasing: line.bytes[0..<line.count]), as: UTF8.self).hasPrefix("HB \(NodeID(value: 0xbb)) ") {
                beats.append(wallMs)
            }
        }
        func learned(node: NodeID, address: String) {}
    }

    /// Periodic HBs go out once per period, at the first tick of the node's slot (its id
    /// modulo period ÷ idle tick), whether the runtime ticks every 100 ms or idles.
    @Test(arguments: [(UInt64(1000), UInt64(500)), (1000, 1000), (2000, 1000), (1500, 750)])
    func periodicHeartbeatsGoOutOncePerPeriodInTheNodesSlot(heartbeatMs: UInt64, idleTickMs: UInt64) {
        let wire = HeartbeatWire()
        let hub = Hub(limits: Limits())
        let c = Cluster(me: NodeID(value: 0xbb), advertise: "10.0.0.2:1", hub: hub, heartbeatMs: heartbeatMs,
                        tickMs: 100, idleTickMs: idleTickMs)
        hub.cluster = c
        c.transport = wire
        var t: UInt64 = 5000
        // Wall-clock time runs 1 ms ahead of the tick boundaries, or 1 ms behind (a timer may fire early).
        wire.wallMs = 600_000
        c.clock = { (t, wire.wallMs) }
        c.linkUp(Self.peer, advertise: "10.0.0.1:1", nowMs: t)
        let slots = heartbeatMs / idleTickMs
        let mine = 0xbb % slots
        for (step, seconds) in [(UInt64(100), UInt64(20)), (idleTickMs, 20)] {
            wire.beats.removeAll()
            // The runtime arms its timer for the next multiple of the period it ticks at.
            let align = (step - wire.wallMs % step) % step
            t += align
            wire.wallMs += align
            let start = wire.wallMs
            while wire.wallMs < start + seconds * 1000 {
                t += step
                wire.wallMs += step
                let jitter: Int64 = (wire.wallMs / step) % 2 == 0 ? 1 : -1
                let wall = UInt64(Int64(wire.wallMs) + jitter)
                c.clock = { (t, wall) }
                let before = wire.beats.count
                c.tick(nowMs: t)
                if wire.beats.count > before { wire.beats[wire.beats.count - 1] = wire.wallMs }
            }
            let periods = Int(seconds * 1000 / heartbeatMs)
            #expect(abs(wire.beats.count - periods) <= 1, "\(wire.beats.count) beats in \(periods) periods, ticking every \(step) ms")
            for w in wire.beats.dropFirst() {
                #expect((w / idleTickMs) % slots == mine, "a beat at \(w) (\(w % heartbeatMs) ms into the period), not in slot \(mine), step \(step): \(wire.beats)")
            }
        }
    }

    /// Past `Tunables.heartbeatFanout` neighbors a node beats every second period (once the
    /// topology settled), and its peers wait twice the peer timeout for it; up to that,
    /// nothing changes.
    @Test func aNodeWithManyNeighborsBeatsLessOftenAndIsGivenLonger() {
        #expect(Cluster.heartbeatStride(neighbors: 0) == 1)
        #expect(Cluster.heartbeatStride(neighbors: Tunables.heartbeatFanout) == 1)
        #expect(Cluster.heartbeatStride(neighbors: Tunables.heartbeatFanout + 1) == 2)
        #expect(Cluster.heartbeatStride(neighbors: 2 * Tunables.heartbeatFanout + 1) == 3)
        for count in [10, 99] {
            let wire = HeartbeatWire()
            let hub = Hub(limits: Limits())
            let c = Cluster(me: NodeID(value: 0xbb), advertise: "10.0.0.2:1", hub: hub, tickMs: 100, idleTickMs: 500)
            hub.cluster = c
            c.transport = wire
            var t: UInt64 = 5000
            wire.wallMs = 600_000
            c.clock = { (t, wire.wallMs) }
            let peers = (0..<count).map { NodeID(value: UInt64(0x1000 + $0)) }
            for (k, p) in peers.enumerated() { c.linkUp(p, advertise: "10.0.1.\(k):1", nowMs: t) }
            let stride = Cluster.heartbeatStride(neighbors: count)
            // Every peer beats but the last, which falls silent.
            func tick(for ms: UInt64) {
                let end = t + ms
                while t < end {
                    t += 100
                    wire.wallMs += 100
                    for (k, p) in peers.dropLast().enumerated() where (wire.wallMs / 100) % 10 == UInt64(k % 10) {
                        try? c.receive(line: Substring("HB \(p) \(t / 100) 10.0.1.\(k):1 1 ="), from: p, nowMs: t, wallMs: wire.wallMs)
                    }
                    c.tick(nowMs: t)
                }
            }
            // Settled (no link change for a while): count the beats of 20 periods.
            tick(for: 2 * Tunables.topologySettleMs)
            wire.beats.removeAll()
            let silentSince = t
            tick(for: 20_000)
            let beats = wire.beats.count / count
            #expect(abs(beats - 20 / Int(stride)) <= 1, "\(beats) beats in 20 periods with \(count) neighbors")
            // The silent peer: dead after its stretched timeout, not before.
            let deadline = c.peerTimeoutMs * stride
            #expect(c.peerTimeoutMs(for: peers.last!) == deadline)
            let alive = c.nodes[peers.last!] != nil
            #expect(alive == (t - silentSince < deadline), "\(count) nodes: after \(t - silentSince) ms of silence, alive \(alive), timeout \(deadline)")
            if alive { tick(for: deadline); #expect(c.nodes[peers.last!] == nil) }
        }
    }

    /// Origins a member invents (any number, up to the node bound) stretch nobody's peer
    /// timeout: the stride comes from neighbor lists and this node's own links.
    @Test func inventedOriginsDoNotStretchTimeouts() throws {
        var t: UInt64 = 10_000
        let (c, hub) = Self.node(tickMs: 100, t: t)
        for k in 0..<300 {
            t += 1
            try c.receive(line: Substring("HB \(NodeID(value: UInt64(0xe000 + k))) 1 10.0.9.\(k % 250):1 1 \(Self.peer)"),
                          from: Self.peer, nowMs: t, wallMs: t)
        }
        #expect(c.nodes.count > 300)
        #expect(c.peerTimeoutMs(for: Self.peer) == c.peerTimeoutMs)
        #expect(c.peerTimeoutMs(for: NodeID(value: 0xe000)) == c.peerTimeoutMs)
        _ = hub
    }

    /// A neighbor whose link closed is dead after `suspectHeartbeats` heartbeats of
    /// silence (a killed process), long before the peer timeout; one that is heard from
    /// again by another path is not.
    @Test func aClosedLinkAndSilenceIsDeathButAnyWordClearsIt() throws {
        var t: UInt64 = 10_000
        let (c, hub) = Self.node(tickMs: 100, t: t)
        c.linkDown(Self.peer, nowMs: t)
        let suspect = Tunables.suspectHeartbeats * c.heartbeatMs
        while t < 10_000 + suspect { t += 100; c.tick(nowMs: t) }
        #expect(c.nodes[Self.peer] != nil)
        for _ in 0..<2 { t += 100; c.tick(nowMs: t) }
        #expect(c.nodes[Self.peer] == nil, "not dead \(suspect + 200) ms after its link closed")
        #expect(suspect + 200 < c.peerTimeoutMs + 1000)
        _ = hub

        var u: UInt64 = 10_000
        let (d, hub2) = Self.node(tickMs: 100, t: u)
        let other = NodeID("00000000000000cc")!
        d.linkUp(other, advertise: "10.0.0.3:1", nowMs: u)
        d.linkDown(Self.peer, nowMs: u)
        u += 500
        // Its HB comes through the other neighbor: alive.
        try d.receive(line: Substring("HB \(Self.peer) 5 10.0.0.1:1 9 \(other)"), from: other, nowMs: u, wallMs: u)
        while u < 10_000 + suspect + 500 { u += 100; d.tick(nowMs: u) }
        #expect(d.nodes[Self.peer] != nil)
        _ = hub2
    }
}
