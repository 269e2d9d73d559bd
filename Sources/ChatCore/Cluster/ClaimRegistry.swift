/// Who holds which username across the cluster, and the rule that decides between claims
/// (SPEC.md §4.2.3 and §4.2.5; docs/cluster-protocol.md §5).
///
/// A claim is (name, HLC timestamp, node). Between two claims on one name the earlier one
/// wins: smaller timestamp, then smaller node id. Every node applies that rule to the same
/// records, so every node reaches the same owner whatever order the records arrived in.
public struct ClaimRegistry: Sendable {
    public struct Record: Equatable, Sendable {
        public var holder: NodeID
        public var ts: UInt64
        /// Granted (a session holds the name) or only asked for (a claim in flight).
        public var granted: Bool
        /// When another node's claim in flight was last heard of (its CLAIM, first or resent).
        public var heardMs: UInt64 = 0

        /// True when this claim beats `other` under the merge rule.
        public func precedes(_ ts: UInt64, _ holder: NodeID) -> Bool {
            (self.ts, self.holder) < (ts, holder)
        }
    }

    public let me: NodeID
    /// Records by lowercased name; usually one, several only while a conflict is being settled.
    public private(set) var records: [String: [Record]] = [:]

    public init(me: NodeID) { self.me = me }

    /// The record that wins for `name`, if any.
    public func owner(of name: String) -> Record? {
        records[name]?.min { $0.precedes($1.ts, $1.holder) }
    }

    public func own(_ name: String) -> Record? { records[name]?.first { $0.holder == me } }

    public var isEmpty: Bool { records.isEmpty }

    /// Starts a local claim. Returns false when any record exists: the name is taken (403).
    public mutating func beginLocal(_ name: String, ts: UInt64) -> Bool {
        guard records[name] == nil else { return false }
        records[name] = [Record(holder: me, ts: ts, granted: false)]
        return true
    }

    public mutating func grantLocal(_ name: String, ts: UInt64) {
        let me = self.me
        update(name) { if $0.holder == me && $0.ts == ts { $0.granted = true } }
    }

    /// Answers another node's claim (docs/cluster-protocol.md §5.2). `lostOwnClaim` is set
    /// when our own claim in flight for the name loses to it.
    public mutating func answer(_ claim: NameClaim, from node: NodeID, nowMs: UInt64 = 0) -> (yes: Bool, lostOwnClaim: UInt64?) {
        var lost: UInt64? = nil
        // A node claims a name only when it holds no record of it, so a record of the
        // claimant's with another timestamp is stale (its RELEASE was lost with a link, or
        // overtaken by this claim while a STATE waits): it must not refuse the new claim.
        if let list = records[claim.name], list.contains(where: { $0.holder == node && $0.ts != claim.ts }) {
            let rest = list.filter { $0.holder != node || $0.ts == claim.ts }
            records[claim.name] = rest.isEmpty ? nil : rest
        }
        for r in records[claim.name] ?? [] {
            if r.holder == node && r.ts == claim.ts {   // a resent claim
                update(claim.name) { if $0.holder == node && $0.ts == claim.ts { $0.heardMs = nowMs } }
                return (true, nil)
            }
            if r.holder == me {
                // A granted name is never given up to a claim: the claimant has not granted yet.
                if r.granted || r.precedes(claim.ts, node) { return (false, nil) }
                lost = r.ts
            } else if r.precedes(claim.ts, node) {
                return (false, nil)
            }
        }
        if let lost { remove(claim.name, holder: me, ts: lost) }
        insert(claim.name, Record(holder: node, ts: claim.ts, granted: false, heardMs: nowMs))
        return (true, lost)
    }

    /// A claim ended (session gone, or claim refused).
    public mutating func release(_ claim: NameClaim, holder: NodeID) {
        remove(claim.name, holder: holder, ts: claim.ts)
    }

    /// A node's full list of granted names (on joining or re-joining). Replaces what was
    /// known of that node. Returns our own names that lose to it: their sessions must go;
    /// and our own claims in flight that lost: they get 403.
    public mutating func merge(state claims: [NameClaim], of node: NodeID) -> (kicked: [NameClaim], refused: [NameClaim]) {
        // Its claims in flight stay: they are settled by their replies, not by its state.
        drop(node, grantedOnly: true)
        var kicked: [NameClaim] = []
        var refused: [NameClaim] = []
        for c in claims {
            if let mine = own(c.name), !mine.precedes(c.ts, node) {
                remove(c.name, holder: me, ts: mine.ts)
                let lost = NameClaim(name: c.name, ts: mine.ts)
                if mine.granted { kicked.append(lost) } else { refused.append(lost) }
            }
            insert(c.name, Record(holder: node, ts: c.ts, granted: true))
        }
        return (kicked, refused)
    }

    /// Forgets every record of a node that left or died.
    public mutating func drop(_ node: NodeID, grantedOnly: Bool = false) {
        for (name, list) in records where list.contains(where: { $0.holder == node }) {
            let rest = list.filter { $0.holder != node || (grantedOnly && !$0.granted) }
            records[name] = rest.isEmpty ? nil : rest
        }
    }

    /// Forgets other nodes' claims in flight not heard of since `olderThanMs` (their RELEASE
    /// was lost; a live claim is resent every second and stays).
    public mutating func expireClaimsInFlight(olderThanMs cutoff: UInt64) {
        let me = self.me
        for (name, list) in records where list.contains(where: { $0.holder != me && !$0.granted && $0.heardMs < cutoff }) {
            let rest = list.filter { $0.holder == me || $0.granted || $0.heardMs >= cutoff }
            records[name] = rest.isEmpty ? nil : rest
        }
    }

    /// Our granted names, for STATE.
    public func ownGranted() -> [NameClaim] {
        var out: [NameClaim] = []
        for (name, list) in records {
            for r in list where r.holder == me && r.granted { out.append(NameClaim(name: name, ts: r.ts)) }
        }
        return out.sorted { $0.name < $1.name }
    }

    private mutating func insert(_ name: String, _ r: Record) {
        var list = records[name] ?? []
        list.removeAll { $0.holder == r.holder && $0.ts == r.ts }
        list.append(r)
        records[name] = list
    }

    private mutating func remove(_ name: String, holder: NodeID, ts: UInt64) {
        guard var list = records[name] else { return }
        list.removeAll { $0.holder == holder && $0.ts == ts }
        records[name] = list.isEmpty ? nil : list
    }

    private mutating func update(_ name: String, _ body: (inout Record) -> Void) {
        guard var list = records[name] else { return }
        for i in list.indices { body(&list[i]) }
        records[name] = list
    }
}
