/// One origin's numbered stream, its control stream or its chat in one room, as seen by
/// this node (docs/cluster-protocol.md §4): everything up to `delivered` was handled in
/// order; later messages that arrived early wait in `held` for the gap to fill (a message
/// still on its way by a longer path), at most `Tunables.streamHoldMs`. A value with no
/// I/O: `Cluster` keeps one per stream and applies what it hands out.
struct OriginStream {
    /// Zero until the first message: the first one seen sets the start.
    var delivered: UInt64 = 0
    var started = false
    var held: [UInt64: (PeerMessage, deadlineMs: UInt64)] = [:]
    /// When its last message came: chat streams idle for `Cluster.streamIdleMs` are forgotten.
    var lastMs: UInt64 = 0

    func seen(_ seq: UInt64) -> Bool { (started && seq <= delivered) || held[seq] != nil }

    /// Messages a step of the stream made ready, in order: those that waited before the
    /// arriving one (when it starts the stream), whether the arriving one is handled now,
    /// and those that waited for it.
    struct Ready {
        var before: [PeerMessage] = []
        var current = false
        var after: [PeerMessage] = []
    }

    /// Whether `seq` (not yet seen) is handled now: it starts the stream, unless an earlier
    /// message may still be on its way (`mayHaveEarlier`); it is the next one; or it comes
    /// before everything held while the stream has not started.
    func isDue(_ seq: UInt64, mayHaveEarlier: Bool) -> Bool {
        (!started && !mayHaveEarlier) || (started && seq == delivered + 1)
            || (!started && held.isEmpty == false && seq < held.keys.min()!)
    }

    /// Handles `seq` now: starts or advances the stream to it, and hands out what waited
    /// before it (at the start) and what no longer waits after it.
    mutating func deliver(_ seq: UInt64) -> Ready {
        var ready = Ready(current: true)
        if !started {
            for s in held.keys.sorted() where s < seq {
                ready.before.append(held.removeValue(forKey: s)!.0)
            }
        }
        started = true
        delivered = seq
        while !held.isEmpty, let (next, _) = held.removeValue(forKey: delivered + 1) {
            delivered += 1
            ready.after.append(next)
        }
        return ready
    }

    /// Early: an earlier message is still on its way by a longer path (a shortcut link just
    /// came up). It waits, briefly, until `deadlineMs`; past `Tunables.maxHeldPerStream`
    /// waiting, the gap is given up at once and what waited is handed out.
    mutating func hold(_ msg: PeerMessage, seq: UInt64, deadlineMs: UInt64) -> Ready {
        held[seq] = (msg, deadlineMs)
        return Ready(after: held.count > Tunables.maxHeldPerStream ? giveUpGap() : [])
    }

    /// Skips a gap that did not fill: hands out what waited, in order. The missing messages
    /// are lost (never reordered); late copies of them count as seen.
    mutating func giveUpGap() -> [PeerMessage] {
        var out: [PeerMessage] = []
        for seq in held.keys.sorted() where !started || seq > delivered {
            out.append(held[seq]!.0)
            delivered = seq
        }
        held.removeAll()
        started = true
        return out
    }

    /// Some held message has waited until `nowMs`: the gap is to be given up.
    func holdExpired(nowMs: UInt64) -> Bool { held.values.contains { $0.deadlineMs <= nowMs } }

    /// Carried nothing since before `cutoffMs` and holds nothing: it can be forgotten.
    func idle(before cutoffMs: UInt64) -> Bool { lastMs < cutoffMs && held.isEmpty }
}
