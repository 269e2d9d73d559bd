import Foundation
import Testing
@testable import ChatCore

/// The username claim, release and merge protocol, explored exhaustively over the real
/// `Hub` + `Cluster` cores (ClaimModel.swift). docs/claim-model.md says what each property
/// means, what the scenarios cover and what they do not.
///
///     swift test --filter ClaimModelTests                          # CI: 2 nodes, < 60 s
///     CLAIM_MODEL_FULL=1 swift test -c release -Xswiftc -enable-testing --filter ClaimModelTests
///     CLAIM_MODEL='nodes=3,names=1,logins=2,crashes=1' swift test --filter ClaimModelTests.custom
@Suite struct ClaimModelTests {

    struct Scenario: Sendable, CustomTestStringConvertible {
        let name: String
        let bounds: ClaimModelBounds
        /// The guarantee's literal wording ("no two sessions while connected", docs/cluster-protocol.md §8.3) is expected to
        /// break in this scenario (docs/claim-model.md, "What is proved").
        var literalBreaks = false
        var testDescription: String { name }
    }

    /// CI: two nodes, every scenario exhaustive within its bounds.
    static let ci: [Scenario] = [
        Scenario(name: "race: 2 names, 1 login each, any order", bounds: .init(nodes: 2, names: 2, loginsPerName: 1)),
        Scenario(name: "loss: 1 name, 2 logins, 1 line lost", bounds: .init(nodes: 2, names: 1, loginsPerName: 2, drops: 1)),
        Scenario(name: "hang: 1 name, 2 logins, 1 peer timeout while linked",
                 bounds: .init(nodes: 2, names: 1, loginsPerName: 2, expires: 1), literalBreaks: true),
        Scenario(name: "partition: 1 name, 2 logins, cut A–B and timed out, heal any time",
                 bounds: .init(nodes: 2, names: 1, loginsPerName: 2, cuts: 1, heals: 1, prefix: [.cut(0, 1), .run(4)]),
                 literalBreaks: true),
        Scenario(name: "partition: 2 names, 1 login each, cut A–B and timed out, heal any time",
                 bounds: .init(nodes: 2, names: 2, loginsPerName: 1, cuts: 1, heals: 1, prefix: [.cut(0, 1), .run(4)])),
        Scenario(name: "crash and loss: 2 names, 1 login each, 1 crash, 1 line lost",
                 bounds: .init(nodes: 2, names: 2, loginsPerName: 1, drops: 1, crashes: 1)),
    ]

    /// Bigger runs: `CLAIM_MODEL_FULL=1`, best in release (see the file's header).
    static let full: [Scenario] = [
        Scenario(name: "2 nodes: race, 2 names, 2 logins each", bounds: .init(nodes: 2, names: 2, loginsPerName: 2)),
        Scenario(name: "2 nodes: loss with resends, 1 name, 2 logins, 1 line lost, 1 s passes",
                 bounds: .init(nodes: 2, names: 1, loginsPerName: 2, drops: 1, waits: 1)),
        Scenario(name: "2 nodes: crash and hang, 1 name, 2 logins",
                 bounds: .init(nodes: 2, names: 1, loginsPerName: 2, crashes: 1, expires: 1)),
        Scenario(name: "2 nodes: hang, 2 names, 1 login each", bounds: .init(nodes: 2, names: 2, loginsPerName: 1, expires: 1),
                 literalBreaks: true),
        Scenario(name: "2 nodes: partition anywhere, 1 name, 2 logins, cut, timeout and heal at any time",
                 bounds: .init(nodes: 2, names: 1, loginsPerName: 2, cuts: 1, heals: 1, expires: 1), literalBreaks: true),
        Scenario(name: "3 nodes: race, 1 name, 2 logins", bounds: .init(nodes: 3, names: 1, loginsPerName: 2)),
        Scenario(name: "3 nodes: crash, 1 name, 2 logins", bounds: .init(nodes: 3, names: 1, loginsPerName: 2, crashes: 1)),
        Scenario(name: "3 nodes: one link cut and healed (traffic rerouted through the third), 1 name, 2 logins",
                 bounds: .init(nodes: 3, names: 1, loginsPerName: 2, cuts: 1, heals: 1)),
        Scenario(name: "3 nodes: A isolated and timed out, heal A–B and A–C at any time, 1 name, 2 logins",
                 bounds: .init(nodes: 3, names: 1, loginsPerName: 2, cuts: 2, heals: 2, prefix: [.cut(0, 1), .cut(0, 2), .run(4)]),
                 literalBreaks: true),
    ]

    static func report(_ label: String, _ bounds: ClaimModelBounds, _ r: ClaimModelResult) -> String {
        var s = "claim model [\(label)] \(bounds): \(r.states) states, \(r.transitions) transitions (\(r.revisits) revisits), depth \(r.depth)"
        s += r.exhausted ? " (exhaustive)" : r.limited ? " (STOPPED at the state limit)" : " (depth-bounded)"
        s += String(format: ", %.1f s", r.seconds)
        s += ", \(r.quiesced) quiescence runs, new states per depth \(r.statesPerDepth)"
        return s
    }

    /// Runs one scenario; fails with the shortest counterexample of every property that broke.
    static func check(_ s: Scenario, sourceLocation: SourceLocation = #_sourceLocation) {
        let checker = ClaimModelChecker(bounds: s.bounds)
        let r = checker.run()
        print(report(s.name, s.bounds, r))
        for (kind, cx) in r.counterexamples.sorted(by: { $0.key < $1.key }) where !checker.isDiagnostic(kind) {
            let story = checker.explain(cx.trace, quiesce: kind.hasPrefix("quiescence"))
            Issue.record("\(s.name): \(kind) violated after \(cx.trace.count) steps: \(cx.detail)\n\(story)", sourceLocation: sourceLocation)
        }
        #expect(r.exhausted || s.bounds.stateLimit > 0 || s.bounds.maxDepth < Int.max, "\(s.name): not exhaustive", sourceLocation: sourceLocation)
        let literal = r.counterexamples["literal"] ?? r.counterexamples["literal (while quiescing)"]
        if s.literalBreaks {
            #expect(literal != nil, "\(s.name): no state with one name held twice on connected nodes was reached", sourceLocation: sourceLocation)
        }
        if let lit = literal, ProcessInfo.processInfo.environment["CLAIM_MODEL_VERBOSE"] != nil {
            print("SPEC-literal counterexample (\(lit.trace.count) steps): \(lit.detail)\n" + checker.explain(lit.trace, quiesce: false))
        }
    }

    @Test(arguments: ci)
    func twoNodes(_ s: Scenario) { Self.check(s) }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CLAIM_MODEL_FULL"] != nil), arguments: full)
    func bigger(_ s: Scenario) { Self.check(s) }

    /// The sleep sets skip transitions, never states: the counts must match without them.
    @Test func sleepSetsKeepEveryState() {
        var b = ClaimModelBounds(nodes: 2, names: 1, loginsPerName: 2, drops: 1)
        let with = ClaimModelChecker(bounds: b).run()
        b.sleepSets = false
        let without = ClaimModelChecker(bounds: b).run()
        #expect(with.states == without.states && with.quiesced == without.quiesced,
                "\(with.states)/\(with.quiesced) states/quiescence runs with sleep sets, \(without.states)/\(without.quiesced) without")
        #expect(with.transitions < without.transitions)
    }

    /// The guarantee's wording (docs/cluster-protocol.md §8.3), "while nodes are connected, no two sessions hold one username",
    /// read literally, fails three steps in: both nodes time each other out while linked.
    @Test func specWordingFailsAtAHang() {
        let b = ClaimModelBounds(nodes: 2, names: 1, loginsPerName: 2, expires: 1, maxDepth: 3)
        let checker = ClaimModelChecker(bounds: b)
        let r = checker.run()
        let lit = r.counterexamples["literal"]
        #expect(lit?.trace == [.login(0, 0), .login(1, 0), .expire])
        #expect(r.counterexamples["safety"] == nil)
    }

    /// Parses `CLAIM_MODEL=nodes=3,names=2,drops=1,...` (the fields of ClaimModelBounds, and
    /// `partitioned` / `isolated` for the partition prefixes).
    static func bounds(from spec: String) -> ClaimModelBounds {
        var b = ClaimModelBounds()
        for part in spec.split(separator: ",") {
            if part == "partitioned" { b.prefix = [.cut(0, 1), .run(4)]; continue }
            if part == "isolated" { b.prefix = [.cut(0, 1), .cut(0, 2), .run(4)]; continue }
            let kv = part.split(separator: "=")
            guard kv.count == 2, let v = Int(kv[1]) else { Issue.record("bad bound \(part)"); continue }
            // `on=02`: logins on nodes 0 and 2 only.
            switch kv[0] {
            case "nodes": b.nodes = v
            case "names": b.names = v
            case "logins": b.loginsPerName = v
            case "drops": b.drops = v
            case "cuts": b.cuts = v
            case "heals": b.heals = v
            case "crashes": b.crashes = v
            case "waits": b.waits = v
            case "expires": b.expires = v
            case "depth": b.maxDepth = v
            case "quiesce": b.quiesce = v != 0
            case "limit": b.stateLimit = v
            case "stop": b.stopAtFirst = v != 0
            case "sleep": b.sleepSets = v != 0
            case "on": b.loginNodes = String(kv[1]).compactMap { Int(String($0)) }
            default: Issue.record("unknown bound \(kv[0])")
            }
        }
        return b
    }

    /// Any bounds, from the environment: `CLAIM_MODEL='nodes=3,crashes=1' swift test --filter ClaimModelTests.custom`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["CLAIM_MODEL"] != nil))
    func custom() {
        let b = Self.bounds(from: ProcessInfo.processInfo.environment["CLAIM_MODEL"]!)
        Self.check(Scenario(name: "custom", bounds: b))
    }
}
