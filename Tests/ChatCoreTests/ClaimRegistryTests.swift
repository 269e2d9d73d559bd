import Testing
@testable import ChatCore

/// The username claims and their merge rule (ClaimRegistry.swift): the earlier
/// (ts, node id) wins, on every node, whatever order the records arrive in.
@Suite struct ClaimRegistryTests {
    // Ordered ids: n[0] < n[1] < n[2].
    static let n = ["1000000000000000", "2000000000000000", "3000000000000000"].map { NodeID($0)! }

    /// A registry in which `me` holds granted `claims`.
    static func registry(_ me: NodeID, granted claims: [NameClaim]) -> ClaimRegistry {
        var r = ClaimRegistry(me: me)
        for c in claims {
            do { let v = r.beginLocal(c.name, ts: c.ts); #expect(v) }
            r.grantLocal(c.name, ts: c.ts)
        }
        return r
    }

    static func permutations<T>(_ xs: [T]) -> [[T]] {
        guard xs.count > 1 else { return [xs] }
        var out: [[T]] = []
        for i in xs.indices {
            var rest = xs
            let x = rest.remove(at: i)
            for p in permutations(rest) { out.append([x] + p) }
        }
        return out
    }

    // MARK: The merge rule

    @Test func earlierTimestampThenSmallerNodeWins() {
        var r = ClaimRegistry(me: Self.n[2])
        _ = r.merge(state: [NameClaim(name: "alice", ts: 5)], of: Self.n[0])
        _ = r.merge(state: [NameClaim(name: "alice", ts: 4)], of: Self.n[1])
        #expect(r.owner(of: "alice") == .init(holder: Self.n[1], ts: 4, granted: true))
        _ = r.merge(state: [NameClaim(name: "alice", ts: 4)], of: Self.n[0])   // n0 replaces its 5 by 4: tie on ts
        #expect(r.owner(of: "alice")?.holder == Self.n[0])
        #expect(r.owner(of: "bob") == nil)
    }

    /// 2–3 nodes, 1–2 names, every assignment of granted claims (none, ts 1, ts 2) and every
    /// order in which each node merges the others' STATE (each applied once, then all again):
    /// every node ends with the same owner, the (ts, id)-smallest claim; exactly the nodes
    /// whose own claim loses are told to kick it, once.
    @Test(arguments: [(2, 1), (2, 2), (3, 1), (3, 2)])
    func everyNodeReachesTheSameOwnerInAnyOrder(nodes: Int, names: Int) {
        let nameList = ["alice", "bob"].prefix(names)
        let slots = nodes * names
        var combos = 1
        for _ in 0..<slots { combos *= 3 }
        for combo in 0..<combos {
            // claims[node] for this assignment
            var claims = Array(repeating: [NameClaim](), count: nodes)
            var code = combo
            for node in 0..<nodes {
                for name in nameList {
                    let v = code % 3
                    code /= 3
                    if v > 0 { claims[node].append(NameClaim(name: name, ts: UInt64(v))) }
                }
            }
            var expected: [String: (ts: UInt64, node: Int)] = [:]
            for node in 0..<nodes {
                for c in claims[node] where expected[c.name].map({ (c.ts, Self.n[node]) < ($0.ts, Self.n[$0.node]) }) ?? true {
                    expected[c.name] = (c.ts, node)
                }
            }
            for me in 0..<nodes {
                let others = (0..<nodes).filter { $0 != me }
                for order in Self.permutations(others) {
                    var r = Self.registry(Self.n[me], granted: claims[me])
                    var kicked: [String] = []
                    for o in order + order {
                        let (k, refused) = r.merge(state: claims[o], of: Self.n[o])
                        kicked += k.map(\.name)
                        #expect(refused.isEmpty)
                    }
                    let ctx = "combo \(combo) claims \(claims.map { $0.map { "\($0.name):\($0.ts)" } }) node \(me) order \(order)"
                    for name in nameList {
                        let owner = r.owner(of: name)
                        #expect(owner?.holder == expected[name].map { Self.n[$0.node] }, "\(ctx) \(name)")
                        #expect(owner?.ts == expected[name]?.ts, "\(ctx) \(name)")
                        let mine = claims[me].contains { $0.name == name }
                        let lost = mine && expected[name]?.node != me
                        #expect(kicked.filter { $0 == name }.count == (lost ? 1 : 0), "\(ctx) kicked \(kicked)")
                        #expect((r.own(name) != nil) == (mine && !lost), "\(ctx) own \(name)")
                    }
                }
            }
        }
    }

    // MARK: Racing claims

    /// Claimants among 3 nodes claim one name at once (ts 1 or 2, so ties are settled by
    /// node id); every claim reaches every other node, in every order. Exactly one claimant
    /// gets a yes from every other node and keeps its claim: the (ts, id)-smallest one.
    @Test func racingClaimsHaveExactlyOneWinnerInEveryOrder() {
        for claimantMask in [0b011, 0b101, 0b110, 0b111] {
            let claimants = (0..<3).filter { claimantMask & (1 << $0) != 0 }
            for tsCode in 0..<(1 << claimants.count) {
                var ts: [Int: UInt64] = [:]
                for (i, c) in claimants.enumerated() { ts[c] = (tsCode >> i) & 1 == 0 ? 1 : 2 }
                let best = claimants.min { (ts[$0]!, Self.n[$0]) < (ts[$1]!, Self.n[$1]) }!
                // deliveries: (claimant, receiver)
                var deliveries: [(Int, Int)] = []
                for c in claimants { for r in 0..<3 where r != c { deliveries.append((c, r)) } }
                for order in Self.permutations(deliveries) {
                    var regs = (0..<3).map { ClaimRegistry(me: Self.n[$0]) }
                    for c in claimants { let v = regs[c].beginLocal("alice", ts: ts[c]!); #expect(v) }
                    var yes = Dictionary(uniqueKeysWithValues: claimants.map { ($0, 0) })
                    var failed = Set<Int>()
                    for (c, r) in order {
                        let (ok, lost) = regs[r].answer(NameClaim(name: "alice", ts: ts[c]!), from: Self.n[c])
                        if ok { yes[c]! += 1 } else { failed.insert(c) }
                        if let lost {
                            #expect(lost == ts[r], "lost names the wrong claim")
                            failed.insert(r)
                        }
                    }
                    let winners = claimants.filter { !failed.contains($0) && yes[$0] == 2 }
                    let ctx = "claimants \(claimants) ts \(ts) order \(order.map { "\($0.0)>\($0.1)" })"
                    #expect(winners == [best], "\(ctx)")
                    #expect(regs[best].own("alice") != nil, "\(ctx)")
                }
            }
        }
    }

    @Test func twoRacingClaimsEitherOrderOneWinner() {
        let a = Self.n[0], b = Self.n[1]
        for (ta, tb) in [(UInt64(5), UInt64(6)), (6, 5), (5, 5)] {
            var ra = ClaimRegistry(me: a), rb = ClaimRegistry(me: b)
            do { let v = ra.beginLocal("alice", ts: ta); #expect(v) }
            do { let v = rb.beginLocal("alice", ts: tb); #expect(v) }
            let atB = rb.answer(NameClaim(name: "alice", ts: ta), from: a)
            let atA = ra.answer(NameClaim(name: "alice", ts: tb), from: b)
            let aWins = (ta, a) < (tb, b)
            #expect(atB.yes == aWins && atA.yes == !aWins, "ts \(ta) \(tb)")
            #expect((atB.lostOwnClaim != nil) == aWins && (atA.lostOwnClaim != nil) == !aWins, "ts \(ta) \(tb)")
            #expect(ra.owner(of: "alice")?.holder == (aWins ? a : b))
            #expect(rb.owner(of: "alice")?.holder == (aWins ? a : b))
        }
    }

    @Test func grantedNameIsNeverGivenUpToAClaim() {
        var r = Self.registry(Self.n[1], granted: [NameClaim(name: "alice", ts: 10)])
        let (yes, lost) = r.answer(NameClaim(name: "alice", ts: 1), from: Self.n[0])
        #expect(!yes && lost == nil)
        #expect(r.own("alice")?.granted == true)
        #expect(r.records["alice"]?.count == 1)
    }

    @Test func resentClaimIsAnsweredYesAgain() {
        var r = ClaimRegistry(me: Self.n[2])
        do { let v = r.answer(NameClaim(name: "alice", ts: 3), from: Self.n[1]).yes; #expect(v) }
        do { let v = r.answer(NameClaim(name: "alice", ts: 3), from: Self.n[1]).yes; #expect(v) }
        #expect(r.records["alice"]?.count == 1)
        do { let v = r.answer(NameClaim(name: "alice", ts: 4), from: Self.n[0]).yes; #expect(!v) }
    }

    @Test func localClaimIsRefusedWhileAnyRecordExists() {
        var r = ClaimRegistry(me: Self.n[0])
        do { let v = r.answer(NameClaim(name: "alice", ts: 9), from: Self.n[1]).yes; #expect(v) }
        do { let v = r.beginLocal("alice", ts: 1); #expect(!v) }
        do { let v = r.beginLocal("bob", ts: 1); #expect(v) }
        do { let v = r.beginLocal("bob", ts: 2); #expect(!v) }
    }

    // MARK: Release, drop, state

    @Test func releaseRemovesOnlyTheMatchingHolderAndTimestamp() {
        var r = ClaimRegistry(me: Self.n[2])
        _ = r.merge(state: [NameClaim(name: "alice", ts: 5)], of: Self.n[0])
        _ = r.merge(state: [NameClaim(name: "alice", ts: 7)], of: Self.n[1])
        r.release(NameClaim(name: "alice", ts: 6), holder: Self.n[0])       // wrong ts
        r.release(NameClaim(name: "alice", ts: 5), holder: Self.n[1])       // wrong holder
        r.release(NameClaim(name: "bob", ts: 5), holder: Self.n[0])         // wrong name
        #expect(r.records["alice"]?.count == 2)
        #expect(r.owner(of: "alice")?.holder == Self.n[0])
        r.release(NameClaim(name: "alice", ts: 5), holder: Self.n[0])
        #expect(r.owner(of: "alice") == .init(holder: Self.n[1], ts: 7, granted: true))
        r.release(NameClaim(name: "alice", ts: 7), holder: Self.n[1])
        #expect(r.records["alice"] == nil)
        #expect(r.isEmpty)
    }

    @Test func dropForgetsEveryRecordOfANode() {
        var r = Self.registry(Self.n[2], granted: [NameClaim(name: "carol", ts: 1)])
        _ = r.merge(state: [NameClaim(name: "alice", ts: 5), NameClaim(name: "bob", ts: 5)], of: Self.n[0])
        _ = r.answer(NameClaim(name: "dave", ts: 6), from: Self.n[0])        // in flight
        _ = r.merge(state: [NameClaim(name: "alice", ts: 7)], of: Self.n[1])
        r.drop(Self.n[0])
        #expect(r.owner(of: "alice")?.holder == Self.n[1])
        #expect(r.records["bob"] == nil)
        #expect(r.records["dave"] == nil)
        #expect(r.own("carol") != nil)
        #expect(r.records.values.allSatisfy { $0.allSatisfy { $0.holder != Self.n[0] } })
    }

    @Test func stateMergeKeepsTheNodesClaimsInFlight() {
        var r = ClaimRegistry(me: Self.n[2])
        do { let v = r.answer(NameClaim(name: "alice", ts: 5), from: Self.n[0]).yes; #expect(v) }
        _ = r.merge(state: [], of: Self.n[0])
        #expect(r.owner(of: "alice") == .init(holder: Self.n[0], ts: 5, granted: false))
        _ = r.merge(state: [NameClaim(name: "bob", ts: 4)], of: Self.n[0])
        #expect(r.owner(of: "alice")?.holder == Self.n[0])
        #expect(r.owner(of: "bob")?.holder == Self.n[0])
        // Granted records the node no longer lists are gone.
        _ = r.merge(state: [], of: Self.n[0])
        #expect(r.records["bob"] == nil)
        #expect(r.records["alice"] != nil)
        // The in-flight claim, once granted and listed, is one record, granted.
        _ = r.merge(state: [NameClaim(name: "alice", ts: 5)], of: Self.n[0])
        #expect(r.records["alice"] == [.init(holder: Self.n[0], ts: 5, granted: true)])
    }

    @Test func stateWithAnEarlierClaimRefusesOurClaimInFlightAndKicksOurGrantedOne() {
        var r = ClaimRegistry(me: Self.n[1])
        do { let v = r.beginLocal("alice", ts: 5); #expect(v) }
        do { let v = r.beginLocal("bob", ts: 5); #expect(v) }
        r.grantLocal("bob", ts: 5)
        do { let v = r.beginLocal("carol", ts: 1); #expect(v) }
        let (kicked, refused) = r.merge(state: [NameClaim(name: "alice", ts: 4), NameClaim(name: "bob", ts: 5),
                                                NameClaim(name: "carol", ts: 2)], of: Self.n[0])
        #expect(kicked == [NameClaim(name: "bob", ts: 5)])      // same ts, smaller id
        #expect(refused == [NameClaim(name: "alice", ts: 5)])   // our lost claims, with our ts
        #expect(r.own("alice") == nil && r.own("bob") == nil)
        #expect(r.own("carol") != nil)      // ours is earlier: kept
        #expect(r.owner(of: "carol")?.holder == Self.n[1])
        #expect(r.ownGranted() == [])
    }

    @Test func ownGrantedListsOnlyOurGrantedNamesSorted() {
        var r = Self.registry(Self.n[0], granted: [NameClaim(name: "zed", ts: 2), NameClaim(name: "amy", ts: 3)])
        do { let v = r.beginLocal("bob", ts: 4); #expect(v) }
        _ = r.merge(state: [NameClaim(name: "carl", ts: 1)], of: Self.n[1])
        #expect(r.ownGranted() == [NameClaim(name: "amy", ts: 3), NameClaim(name: "zed", ts: 2)])
    }
}
