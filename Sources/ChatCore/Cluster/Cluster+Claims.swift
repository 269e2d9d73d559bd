/// The username claim protocol (docs/cluster-protocol.md §5, "Claims"; the merge rule is
/// `ClaimRegistry`'s): local logins' claims, the nodes each one awaits, replies, resends,
/// the claim deadline that makes a silent node a failed one, and STATE merges.
extension Cluster {
    struct PendingClaim {
        var ts: UInt64
        /// Nodes whose answer the claim waits for, and since when (monotonic ms).
        var waiting: [NodeID: UInt64]
        var sentMs: UInt64
        let startedUs: UInt64
        /// When the claim started (monotonic ms): its whole wait is bounded (`claimWaitMs`).
        var startedMs: UInt64 = 0
    }

    /// How long a claim waits for one node's answer (asked, then asked again every
    /// `Tunables.claimResendMs`) before that node counts as failed: the peer timeout and one resend.
    public var claimAnswerMs: UInt64 { peerTimeoutMs + Tunables.claimResendMs }

    /// How long a claim waits in all, however many nodes appear while it waits: each node
    /// that became known meanwhile is asked at once and gets `claimAnswerMs` from then, but
    /// past `claimAnswerMs + peerTimeoutMs` from the claim's start any node still awaited
    /// that has had a resend's time to answer counts as failed. Without this bound a member
    /// inventing fresh origins faster than `claimAnswerMs` held every login (fuzz target
    /// `cluster`, finding 6).
    public var claimWaitMs: UInt64 { claimAnswerMs + peerTimeoutMs }

    // MARK: Claims, for the Hub

    public enum ClaimStart: Equatable { case granted, taken, pending }

    /// Starts a claim on a username (its lowercased key) for a local login.
    public func claim(_ name: String) -> ClaimStart {
        let (nowMs, wallMs) = clock()
        let ts = hlc.now(wallMs: wallMs)
        guard registry.beginLocal(name, ts: ts) else { return .taken }
        if nodes.isEmpty {
            registry.grantLocal(name, ts: ts)
            return .granted
        }
        pending[name] = PendingClaim(ts: ts, waiting: Dictionary(uniqueKeysWithValues: nodes.keys.map { ($0, nowMs) }),
                                     sentMs: nowMs, startedUs: preciseNowUs(), startedMs: nowMs)
        flood(.claim(next(), NameClaim(name: name, ts: ts)))
        return .pending
    }

    /// A node became known while claims wait (it joined, or a partition is healing): it may
    /// hold one of the names, granted while it was out of reach, so each claim waits for its
    /// answer too, and is sent again now rather than at the next resend.
    func askNewNode(_ id: NodeID, nowMs: UInt64) {
        guard !pending.isEmpty else { return }
        for name in pending.keys.sorted() {
            pending[name]!.waiting[id] = nowMs
            flood(.claim(next(), NameClaim(name: name, ts: pending[name]!.ts)))
        }
    }

    /// A local session ended (or a pending login was abandoned): the name is free everywhere.
    public func release(_ name: String) {
        pending[name] = nil
        guard let r = registry.own(name) else { return }
        registry.release(NameClaim(name: name, ts: r.ts), holder: me)
        flood(.release(next(), NameClaim(name: name, ts: r.ts)))
    }

    private func settled(_ p: PendingClaim) {
        let now = preciseNowUs()
        onClaimSettled?(now >= p.startedUs ? now - p.startedUs : 0)
    }

    private func grant(_ name: String) {
        guard let p = pending.removeValue(forKey: name) else { return }
        settled(p)
        registry.grantLocal(name, ts: p.ts)
        hub.claimFinished(nameKey: name, granted: true)
    }

    /// Our claim lost: 403 for the login, and the nodes that recorded it forget it.
    private func failLocal(_ name: String, ts: UInt64) {
        registry.release(NameClaim(name: name, ts: ts), holder: me)
        flood(.release(next(), NameClaim(name: name, ts: ts)))
        fail(name)
    }

    private func fail(_ name: String) {
        guard let p = pending.removeValue(forKey: name) else { return }
        settled(p)
        hub.claimFinished(nameKey: name, granted: false)
    }

    /// A node stopped being awaited (it died, was cut off, left or failed to answer):
    /// claims that waited only for it are granted.
    func stopAwaiting(_ id: NodeID) {
        for (name, var p) in pending where p.waiting.removeValue(forKey: id) != nil {
            pending[name] = p
            if p.waiting.isEmpty { grant(name) }
        }
    }

    // MARK: Claims, from peers

    /// Another node's CLAIM: answered at once (rule 2), which may end a claim of ours.
    func answer(_ c: NameClaim, from o: NodeID, nowMs: UInt64, wallMs: UInt64) {
        hlc.observe(c.ts, wallMs: wallMs)
        let (yes, lost) = registry.answer(c, from: o, nowMs: nowMs)
        if neighbors.contains(o) {
            // Only the claimant needs the answer: to a neighbor it goes direct (seq 0), one
            // line instead of a flood that every node would receive from every other.
            transport?.send(Payload.line(PeerMessage.reply(Flood(origin: me, seq: 0), claimant: o, c, granted: yes).encoded), to: o)
        } else {
            flood(.reply(next(), claimant: o, c, granted: yes))
        }
        if let lost { failLocal(c.name, ts: lost) }
    }

    /// A REPLY to a claim (rule 3).
    func take(reply c: NameClaim, claimant: NodeID, granted: Bool, from o: NodeID) {
        // Only the nodes the claim waits for have a say (a stranger's "no" is ignored).
        guard claimant == me, var p = pending[c.name], p.ts == c.ts, p.waiting[o] != nil else { return }
        if !granted {
            failLocal(c.name, ts: c.ts)
            return
        }
        p.waiting[o] = nil
        pending[c.name] = p
        if p.waiting.isEmpty { grant(c.name) }
    }

    /// The granted names of a STATE, merged ("Partitions and merges"; rule 3's stale yes).
    func mergeState(_ claims: [NameClaim], of o: NodeID, nowMs: UInt64, wallMs: UInt64) {
        for c in claims { hlc.observe(c.ts, wallMs: wallMs) }
        let (kicked, refused) = registry.merge(state: claims, of: o)
        // Our lost claims: every node that recorded them must forget them too.
        for c in refused + kicked { flood(.release(next(), c)) }
        for c in refused { fail(c.name) }
        for c in kicked {
            pending[c.name] = nil
            hub.kick(nameKey: c.name)
        }
        // A name it holds granted that a claim of ours still waits for (an earlier claim:
        // a later one was refused above): it granted after forgetting our claim (it timed
        // us out, we did not time it out), so a yes it gave is stale. Ask it again; it
        // answers no, as a granted name is never given up to a claim.
        for c in claims where pending[c.name] != nil {
            if pending[c.name]!.waiting[o] == nil {
                pending[c.name]!.waiting[o] = nowMs
                flood(.claim(next(), NameClaim(name: c.name, ts: pending[c.name]!.ts)))
            }
        }
        // A name it holds granted that we hold with an earlier claim: it has lost, but our
        // STATE may have left before we granted. Tell it now, not at the next periodic STATE.
        if claims.contains(where: { c in registry.own(c.name).map { $0.granted && $0.precedes(c.ts, o) } ?? false }) {
            sendState()
        }
    }

    // MARK: Claims, in time

    /// A node that does not answer a claim within `claimAnswerMs`, though it is heard
    /// from (a hung process, or an origin a hostile peer made up), is treated as failed:
    /// the login does not wait for it, and its messages are ignored for `Tunables.departedMs`.
    func dropSilentNodes(nowMs: UInt64) {
        var silent: Set<NodeID> = []
        for p in pending.values {
            let overdue = nowMs > p.startedMs + liveness.stretched(claimWaitMs)
            for (id, since) in p.waiting
            where nowMs > since + liveness.stretched(claimAnswerMs) || (overdue && nowMs > since + Tunables.claimResendMs) {
                silent.insert(id)
            }
        }
        for id in silent.sorted() {
            onEvent?(.unresponsive(id))
            drop(id, until: nowMs + Tunables.departedMs)
        }
    }

    /// Unanswered claims are sent again every `Tunables.claimResendMs` (a reply lost with a link).
    func resendClaims(nowMs: UInt64) {
        for (name, p) in pending where nowMs >= p.sentMs + Tunables.claimResendMs {
            pending[name]?.sentMs = nowMs
            flood(.claim(next(), NameClaim(name: name, ts: p.ts)))
        }
    }
}
