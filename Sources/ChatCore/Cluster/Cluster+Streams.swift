/// The cluster's per-origin streams (docs/cluster-protocol.md §4, steps 3 and 5; §5,
/// "Streams end"): de-duplication, delivery in each origin's order with early messages
/// held back (`OriginStream`), gaps given up, idle streams forgotten.
extension Cluster {
    /// A chat stream that carried nothing for this long is forgotten.
    /// (Ten peer timeouts: far longer than any late copy can take.)
    var streamIdleMs: UInt64 { Tunables.streamIdlePeerTimeouts * peerTimeoutMs }
    /// A room of ours with no member for this long stops being numbered: by then every
    /// node has forgotten our stream in it (`streamIdleMs`, checked every
    /// `Tunables.stateEveryMs`), so its next message can start a new stream at 1.
    var roomSequenceIdleMs: UInt64 { 2 * streamIdleMs + Tunables.stateEveryMs }

    /// How many per-origin streams this node tracks (status; tests check it stays bounded).
    public var streamCount: Int { nodes.values.reduce(0) { $0 + 1 + $1.chat.count } }
    /// Rooms this node numbers its own chat in (one per room with local members).
    public var roomSequenceCount: Int { roomSeqs.count }

    /// The stream a message belongs to, marked as heard from now; nil when the message was
    /// already seen in it (a copy that came by another path). The origin is tracked.
    func unseenStream(_ f: Flood, room: String?, nowMs: UInt64) -> OriginStream? {
        var stream = room.map { nodes[f.origin]!.chat[$0] ?? OriginStream() } ?? nodes[f.origin]!.control
        stream.lastMs = nowMs
        if stream.seen(f.seq) { return nil }
        return stream
    }

    /// Step 5 of §4: places a new message in its stream, stores the stream, and says what is
    /// now to be handled, in order.
    func order(_ m: Incoming, _ f: Flood, room: String?, in stream: inout OriginStream, nowMs: UInt64) -> OriginStream.Ready {
        // A stream's first message starts it, unless the topology just changed: then an
        // earlier message may still be on its way by the old, longer path.
        // (Chat only: control messages are never held back at a stream's start.)
        let mayHaveEarlier = room != nil && !stream.started && f.seq > 1 && nowMs < lastTopologyChangeMs + Tunables.topologySettleMs
        let due = stream.isDue(f.seq, mayHaveEarlier: mayHaveEarlier)
        if !due { mayHoldMessages = true }
        let ready = due ? stream.deliver(f.seq) : stream.hold(m.message, seq: f.seq, deadlineMs: nowMs + Tunables.streamHoldMs)
        store(stream, origin: f.origin, room: room)
        return ready
    }

    private func store(_ stream: OriginStream, origin: NodeID, room: String?) {
        guard nodes[origin] != nil else { return }
        if let room { nodes[origin]!.chat[room] = stream } else { nodes[origin]!.control = stream }
    }

    /// Gaps that waited long enough are given up (called from `tick`).
    func releaseExpiredHolds(nowMs: UInt64, wallMs: UInt64) {
        // Nothing was held since the last sweep that found nothing: no walk over every
        // origin's streams ten times a second.
        guard mayHoldMessages else { return }
        mayHoldMessages = nodes.values.contains { n in !n.control.held.isEmpty || n.chat.values.contains { !$0.held.isEmpty } }
        for (id, n) in nodes {
            var due: [(String?, OriginStream)] = []
            if n.control.holdExpired(nowMs: nowMs) { due.append((nil, n.control)) }
            for (room, st) in n.chat where st.holdExpired(nowMs: nowMs) { due.append((room, st)) }
            for (room, var st) in due {
                let ready = st.giveUpGap()
                store(st, origin: id, room: room)
                for m in ready { try? apply(m, m.flood!, nowMs: nowMs, wallMs: wallMs) }
            }
        }
    }

    /// Chat streams that carried nothing for `streamIdleMs` (rooms that emptied, or a
    /// transit node's view of traffic it only forwarded) are forgotten: their next message
    /// starts them afresh.
    func forgetIdleStreams(nowMs: UInt64) {
        forgetUnusedRoomSequences(nowMs: nowMs)
        guard nowMs > streamIdleMs else { return }
        let cutoff = nowMs - streamIdleMs
        for (id, n) in nodes where n.chat.values.contains(where: { $0.idle(before: cutoff) }) {
            nodes[id]!.chat = n.chat.filter { !$0.value.idle(before: cutoff) }
        }
    }

    /// Our numbering of rooms that have had no local member for `roomSequenceIdleMs`.
    private func forgetUnusedRoomSequences(nowMs: UInt64) {
        for room in roomSeqs.keys {
            if hub.rooms[room] != nil { roomSeqsUnusedSince[room] = nil; continue }
            guard let since = roomSeqsUnusedSince[room] else { roomSeqsUnusedSince[room] = nowMs; continue }
            if nowMs >= since + roomSequenceIdleMs {
                roomSeqs[room] = nil
                roomSeqsUnusedSince[room] = nil
            }
        }
    }
}
