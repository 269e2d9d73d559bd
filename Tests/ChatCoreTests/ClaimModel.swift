import Testing
import InMemoryClusterSupport
@testable import ChatCore

// The username claim protocol, model-checked (docs/claim-model.md).
//
// A world of 2–3 REAL `Hub` + `Cluster` cores wired by in-memory FIFO links, a model clock
// and a bounded adversary. The checker (`ClaimModelChecker`) explores every interleaving of
// the adversary's actions breadth-first. The cores are reference types with private state,
// so a state is stored as the action sequence that reaches it from the initial state and
// rebuilt by replaying it (everything here is deterministic); states are de-duplicated by a
// fingerprint of everything that decides the future: every stored property of every core
// (read by reflection, private ones included), the link queues, the clock, the budgets left
// and the ghost variables the properties read.

// MARK: - Bounds and actions

/// What the adversary may do, and how often, in one exploration.
struct ClaimModelBounds: CustomStringConvertible, Sendable {
    var nodes = 2
    var names = 2
    /// Logins per name, over the whole run.
    var loginsPerName = 2
    /// Nodes where logins may happen (nil: all).
    var loginNodes: [Int]? = nil
    /// Losses of the head of one link direction while the link stays up.
    var drops = 0
    /// Link cuts (both directions emptied, `linkDown` at both ends) and heals (`linkUp`).
    var cuts = 0
    var heals = 0
    /// Node crashes (nothing more to or from it, ever; its peers see their links go down).
    var crashes = 0
    /// Clock +1 s, every live node ticks (heartbeats, claim resends).
    var waits = 0
    /// Clock + peer timeout + 1 ms, every live node ticks: each drops the nodes it has not
    /// heard from since (a hang or a slow network, links still up).
    var expires = 0
    /// Longest action sequence explored (a state at this depth is checked, not expanded).
    var maxDepth = Int.max
    /// Run the quiescence check (heal, deliver, tick 32 s) from every new state.
    var quiesce = true
    /// Stop after this many states (a guard for experiments; 0 = none).
    var stateLimit = 0
    /// Stop at the first counterexample (of a kind that is not diagnostic).
    var stopAtFirst = false
    /// Skip transitions that commute with one explored already (never skips a state).
    var sleepSets = true
    /// Actions applied to the initial state before the exploration starts (a scenario's
    /// setting, e.g. a partition already in place); they use up their budgets.
    var prefix: [ClaimModelAction] = []

    var description: String {
        "\(nodes) nodes, \(names) names, logins/name ≤\(loginsPerName), drops ≤\(drops), cuts ≤\(cuts), "
            + "heals ≤\(heals), crashes ≤\(crashes), waits ≤\(waits), expiries ≤\(expires)"
            + (maxDepth == Int.max ? "" : ", depth ≤\(maxDepth)")
            + (loginNodes.map { ", logins on \($0.map { ClaimModelWorld.letters[$0] }.joined())" } ?? "")
            + (prefix.isEmpty ? "" : ", after \(prefix)")
    }
}

enum ClaimModelAction: Hashable, Sendable, CustomStringConvertible {
    case login(Int, Int)        // node, name
    case logout(Int, Int)       // a session's end, or a pending login abandoned
    case deliver(Int, Int)      // from, to: the head of that direction's queue
    case drop(Int, Int)         // from, to: the head is lost
    case cut(Int, Int)
    case heal(Int, Int)
    case crash(Int)
    case wait
    case expire
    /// Prefix only: `k` seconds of normal operation (deliver everything, +1 s, all tick).
    case run(Int)

    var description: String {
        let l = ClaimModelWorld.letters, nm = ClaimModelWorld.names
        switch self {
        case let .login(i, m): return "login(\(l[i]),\(nm[m]))"
        case let .logout(i, m): return "logout(\(l[i]),\(nm[m]))"
        case let .deliver(x, y): return "deliver(\(l[x])→\(l[y]))"
        case let .drop(x, y): return "drop(\(l[x])→\(l[y]))"
        case let .cut(x, y): return "cut(\(l[x])–\(l[y]))"
        case let .heal(x, y): return "heal(\(l[x])–\(l[y]))"
        case let .crash(i): return "crash(\(l[i]))"
        case .wait: return "wait"
        case .expire: return "expire"
        case let .run(k): return "run(\(k)s)"
        }
    }
}

// MARK: - The world

/// A login's connection, as the runtime's `ClientHandler` would be: it records the replies.
final class ClaimModelSink: SessionSink {
    enum State: Equatable { case pending, session, refused, ended }
    let node: Int
    let name: Int
    var session: Session?
    var state = State.pending
    var got200 = 0
    var got403 = 0
    var gotLost = 0
    var finished = 0
    var endRequested = false
    /// Trace only: its 200 was reported.
    var reported = false
    /// Ghost: per other node, true while this node and it have been in contact (each lists
    /// the other as live) at every state since this login started.
    var contact: [Bool]

    init(node: Int, name: Int, contact: [Bool]) { self.node = node; self.name = name; self.contact = contact }

    func enqueue(_ payload: Payload, length: Int) {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]), as: UTF8.self)
        switch text {
        case Notice.accepted + "\n": got200 += 1
        case Notice.nameTaken + "\n": got403 += 1
        case Notice.nameLost + "\n": gotLost += 1
        default: break
        }
    }
    func loginFinished(_ s: Session?) {
        finished += 1
        session = s
        state = s == nil ? .refused : .session
    }
    func endSession() { endRequested = true }
}

/// One state of the model, built from the initial state by a sequence of actions.
final class ClaimModelWorld {
    /// Node ids in index order: A < B < C (the tie-break order).
    static let ids = ["000000000000000a", "000000000000000b", "000000000000000c"]
    static let letters = ["A", "B", "C"]
    static let names = ["ann", "bob"]
    static let room = ChatName("lobby", maxLength: Limits.maxChatIDLength)!

    let bounds: ClaimModelBounds
    /// The shared in-memory network (Fuzz/Support/InMemoryCluster.swift): the cores, the
    /// links, their queues and the clock.
    let net: InMemoryCluster
    var nodes: [InMemoryCluster.Node] { net.nodes }
    var alive: [Bool]
    var up: [[Bool]] { get { net.up } _modify { yield &net.up } }
    var queues: [[[String]]] { get { net.queues } _modify { yield &net.queues } }
    var nowMs: UInt64 { get { net.nowMs } _modify { yield &net.nowMs } }
    var wallBase: UInt64 { net.wallBase }

    // Budgets used.
    var loginsOf: [Int]
    var drops = 0, cuts = 0, heals = 0, crashes = 0, waits = 0, expires = 0

    // Ghost variables.
    /// The live login (pending or session) per node and name.
    var live: [[ClaimModelSink?]]
    /// Per name: a session of it ended by its user (logout, abandoned login) or by a crash.
    var disturbed: [Bool]
    /// Per name: a session of it ended by its user or a crash while another node held the
    /// name too (a conflict not yet settled): the merge may then rightly leave no holder.
    var leftDuringConflict: [Bool]
    /// Every login ever made, in order (for traces).
    var sinks: [ClaimModelSink] = []
    /// The residents' connections (sessions only point at their sinks).
    var residents: [ClaimModelSink] = []

    /// Property violations at this state (or during its quiescence run), by kind.
    var violations: [(kind: String, detail: String)] = []
    /// When set, a readable account of every action and its visible effects.
    var trace: [String]?
    /// Off while replaying a prefix whose states were checked already.
    var checking = true

    init(_ bounds: ClaimModelBounds, tracing: Bool = false) {
        self.bounds = bounds
        let n = bounds.nodes
        alive = Array(repeating: true, count: n)
        net = InMemoryCluster(ids: Self.ids.prefix(n).map { NodeID($0)! })
        loginsOf = Array(repeating: 0, count: bounds.names)
        live = Array(repeating: Array(repeating: nil, count: bounds.names), count: n)
        disturbed = Array(repeating: false, count: bounds.names)
        leftDuringConflict = Array(repeating: false, count: bounds.names)
        if tracing { trace = [] }
        net.fault = { [unowned self] in self.violations.append(("sanity", self.pretty($0))) }
        net.refused = { [unowned self] a, b, line, error in
            self.violations.append(("sanity", "\(self.letter(b)) refused \(line) from \(self.letter(a)): \(error)"))
        }
        // The initial state: a full mesh that has exchanged HB and STATE, and on each node a
        // resident member of the room (`res<i>`, never part of the model): logins and logouts
        // then never announce or retract the room, whose ROOM lines only route chat.
        for i in 0..<n {
            // Alone, each node grants its resident at once; the mesh's STATE lines spread them.
            let sink = ClaimModelSink(node: i, name: -1, contact: [])
            residents.append(sink)
            _ = nodes[i].hub.login(username: ChatName("res\(i)", maxLength: Limits.maxUsernameLength)!,
                                   chatID: Self.room, framing: .line, sink: sink)
        }
        for a in 0..<n { for b in 0..<n where a < b { linkUp(a, b) } }
        deliverAll()
        trace?.append("initial: full mesh of \(n), a resident member res<i> in lobby on each node, settled, clock 0")
        for a in bounds.prefix { apply(a) }
        if !bounds.prefix.isEmpty { trace?.append("-- (the above is the scenario's fixed prefix; the search starts here)") }
    }

    /// The state reached by `actions` from the initial state.
    static func replay(_ bounds: ClaimModelBounds, _ actions: [ClaimModelAction], tracing: Bool = false) -> ClaimModelWorld {
        let w = ClaimModelWorld(bounds, tracing: tracing)
        w.checking = tracing
        for a in actions { w.apply(a) }
        w.checking = true
        return w
    }

    var n: Int { bounds.nodes }
    func letter(_ i: Int) -> String { Self.letters[i] }

    // MARK: Transport

    func linkUp(_ a: Int, _ b: Int) { net.linkUp(a, b) }
    func linkDown(_ a: Int, _ b: Int) { net.linkDown(a, b) }

    func canDeliver(_ a: Int, _ b: Int) -> Bool { alive[a] && alive[b] && up[a][b] && !queues[a][b].isEmpty }

    private func deliver(_ a: Int, _ b: Int) { net.deliver(a, b) }

    /// Delivers everything in flight, round-robin over the links (a fair, fixed schedule).
    func deliverAll() {
        var moved = true
        var guardCount = 0
        while moved {
            moved = false
            for a in 0..<n { for b in 0..<n where a != b && canDeliver(a, b) {
                deliver(a, b)
                settle()
                moved = true
                guardCount += 1
            } }
            if guardCount > 100_000 { violations.append(("quiescence", "the network never fell silent")); return }
        }
    }

    private func tickAll() {
        for i in 0..<n where alive[i] { nodes[i].cluster.tick(nowMs: nowMs) }
    }

    // MARK: Contact and connectivity

    /// Both alive and each lists the other as a live node.
    func contact(_ i: Int, _ j: Int) -> Bool {
        alive[i] && alive[j] && nodes[i].cluster.nodes[nodes[j].id] != nil && nodes[j].cluster.nodes[nodes[i].id] != nil
    }

    /// Both alive and joined by a path of up links through live nodes (SPEC's "connected").
    func connected(_ i: Int, _ j: Int) -> Bool {
        guard alive[i], alive[j] else { return false }
        var seen: Set<Int> = [i], todo = [i]
        while let x = todo.popLast() {
            if x == j { return true }
            for y in 0..<n where alive[y] && up[x][y] && !seen.contains(y) { seen.insert(y); todo.append(y) }
        }
        return false
    }

    // MARK: Actions

    func enabled() -> [ClaimModelAction] {
        var out: [ClaimModelAction] = []
        for i in 0..<n where alive[i] {
            for m in 0..<bounds.names {
                if live[i][m] != nil {
                    out.append(.logout(i, m))
                } else if loginsOf[m] < bounds.loginsPerName && bounds.loginNodes?.contains(i) ?? true {
                    out.append(.login(i, m))
                }
            }
        }
        for a in 0..<n { for b in 0..<n where a != b && canDeliver(a, b) { out.append(.deliver(a, b)) } }
        if drops < bounds.drops {
            for a in 0..<n { for b in 0..<n where a != b && canDeliver(a, b) { out.append(.drop(a, b)) } }
        }
        for a in 0..<n { for b in 0..<n where a < b && alive[a] && alive[b] {
            if up[a][b] && cuts < bounds.cuts { out.append(.cut(a, b)) }
            if !up[a][b] && heals < bounds.heals { out.append(.heal(a, b)) }
        } }
        if crashes < bounds.crashes { for i in 0..<n where alive[i] { out.append(.crash(i)) } }
        if waits < bounds.waits { out.append(.wait) }
        if expires < bounds.expires { out.append(.expire) }
        return out
    }

    func describe(_ a: ClaimModelAction) -> String {
        switch a {
        case let .login(i, m): return "login \(Self.names[m]) on \(letter(i))"
        case let .logout(i, m): return "logout \(Self.names[m]) on \(letter(i))"
        case let .deliver(x, y): return "deliver \(letter(x))→\(letter(y))"
        case let .drop(x, y): return "drop head of \(letter(x))→\(letter(y))"
        case let .cut(x, y): return "cut \(letter(x))–\(letter(y))"
        case let .heal(x, y): return "heal \(letter(x))–\(letter(y))"
        case let .crash(i): return "crash \(letter(i))"
        case .wait: return "wait 1 s, all tick"
        case .expire: return "wait peer timeout + 1 ms, all tick"
        case let .run(k): return "run \(k) s (deliver all, +1 s, all tick; \(k)×)"
        }
    }

    func apply(_ a: ClaimModelAction) {
        var head: String?
        switch a {
        case let .login(i, m):
            loginsOf[m] += 1
            let sink = ClaimModelSink(node: i, name: m, contact: (0..<n).map { $0 != i && contact(i, $0) })
            sinks.append(sink)
            live[i][m] = sink
            let user = ChatName(Self.names[m], maxLength: Limits.maxUsernameLength)!
            switch nodes[i].hub.login(username: user, chatID: Self.room, framing: .line, sink: sink) {
            case .accepted(let s): sink.session = s; sink.state = .session
            case .nameTaken: sink.state = .refused
            case .pending: break
            }
        case let .logout(i, m):
            let s = live[i][m]!
            disturbed[m] = true
            if s.state == .session && holders(m).count > 1 { leftDuringConflict[m] = true }
            if let session = s.session {
                nodes[i].hub.logout(session)
            } else {
                nodes[i].hub.abandonLogin(username: ChatName(Self.names[m], maxLength: Limits.maxUsernameLength)!, sink: s)
            }
            s.state = .ended
        case let .deliver(x, y):
            head = queues[x][y].first
            deliver(x, y)
        case let .drop(x, y):
            drops += 1
            head = queues[x][y].removeFirst()
        case let .cut(x, y):
            cuts += 1
            linkDown(x, y)
        case let .heal(x, y):
            heals += 1
            linkUp(x, y)
        case let .crash(i):
            crashes += 1
            for m in 0..<bounds.names where live[i][m] != nil {
                if live[i][m]!.state == .session && holders(m).count > 1 { leftDuringConflict[m] = true }
                live[i][m]!.state = .ended
                disturbed[m] = true
            }
            for j in 0..<n where j != i {
                queues[i][j] = []
                queues[j][i] = []
                if up[i][j] {
                    up[i][j] = false
                    up[j][i] = false
                    nodes[j].cluster.linkDown(nodes[i].id, nowMs: nowMs)
                }
            }
            alive[i] = false
        case .wait:
            waits += 1
            nowMs += 1000
            tickAll()
        case .expire:
            expires += 1
            nowMs += nodes[0].cluster.peerTimeoutMs + 1
            tickAll()
        case let .run(k):
            for _ in 0..<k {
                deliverAll()
                nowMs += 1000
                tickAll()
                settle()
            }
            deliverAll()
        }
        if trace != nil {
            trace!.append("\(describe(a))" + (head.map { ": " + pretty($0) } ?? ""))
        }
        settle()
    }

    // MARK: After every step

    /// Ends kicked sessions (the runtime closes them right after the call that asked),
    /// updates the ghost variables, and checks the invariants.
    func settle() {
        var again = true
        while again {
            again = false
            for s in sinks where s.endRequested && s.state == .session && alive[s.node] {
                s.state = .ended
                nodes[s.node].hub.logout(s.session!)
                trace?.append("   \(letter(s.node)): \(Self.names[s.name]) session kicked (name lost to an earlier claim)")
                again = true
            }
        }
        for i in 0..<n { for m in 0..<bounds.names {
            guard let s = live[i][m] else { continue }
            if s.got200 + s.got403 > 1 || s.finished > 1 || (s.got200 == 1 && s.state == .refused) {
                violations.append(("sanity", "login \(Self.names[m]) on \(letter(i)) answered twice (200×\(s.got200), 403×\(s.got403))"))
            }
            if trace != nil, s.got200 == 1, !s.reported {
                s.reported = true
                trace!.append("   \(letter(i)): \(Self.names[m]) 200")
            }
            if s.state == .refused || s.state == .ended {
                if trace != nil, s.state == .refused { trace!.append("   \(letter(i)): \(Self.names[m]) 403") }
                live[i][m] = nil
            }
        } }
        // Ghost: contact since the login started.
        for i in 0..<n { for m in 0..<bounds.names {
            guard let s = live[i][m] else { continue }
            for j in 0..<n where j != i && s.contact[j] && !contact(i, j) { s.contact[j] = false }
        } }
        if checking { checkSafety() }
    }

    /// Sessions that hold a name, on live nodes.
    func holders(_ m: Int) -> [Int] { (0..<n).filter { alive[$0] && live[$0][m]?.state == .session } }

    func checkSafety() {
        for m in 0..<bounds.names {
            let name = Self.names[m]
            var first = -1
            for i in 0..<n where alive[i] {
                let holds = live[i][m]?.state == .session
                if holds != (nodes[i].hub.sessions[name] != nil) {
                    violations.append(("sanity", "\(letter(i)): hub and logins disagree on \(name)"))
                }
                guard holds else { continue }
                if first < 0 { first = i; continue }
                // Two holders (at most three nodes: check every pair).
                for x in 0..<i where alive[x] && live[x][m]?.state == .session {
                    let sx = live[x][m]!, si = live[i][m]!
                    if sx.contact[i] || si.contact[x] {
                        violations.append(("safety", "\(name) held on \(letter(x)) and \(letter(i)), in contact since the later login"))
                    }
                    if connected(x, i) {
                        violations.append(("literal", "\(name) held on \(letter(x)) and \(letter(i)) while they are connected"))
                    }
                }
            }
        }
    }

    // MARK: Quiescence

    /// No line in flight between live nodes.
    var silent: Bool {
        for a in 0..<n where alive[a] { for b in 0..<n where a != b && alive[b] && !queues[a][b].isEmpty { return false } }
        return true
    }

    /// How long the quiescence run may take: past the peer timeout (a crashed node is
    /// dropped), two STATE periods (granted records refreshed; a claim in flight not heard of
    /// for 10 s forgotten, which a STATE tick does up to 10 s late) and some.
    static let quiesceSeconds = 32

    /// Heals every link between live nodes, then lets the cluster run alone — deliver
    /// everything, +1 s, every node ticks — until it is stable (`quiescentProblems` finds
    /// nothing and nothing can still change: no line in flight, no claim waiting, no early
    /// message held back), at most `quiesceSeconds`; then checks where it ended.
    func quiesce() {
        trace?.append("-- quiescence: heal every link between live nodes; then deliver all, +1 s, all tick, until stable (≤ \(Self.quiesceSeconds) s)")
        let sessionsBefore = (0..<bounds.names).map { holders($0).count }
        for a in 0..<n { for b in 0..<n where a < b && alive[a] && alive[b] && !up[a][b] { linkUp(a, b) } }
        settle()
        var seconds = 0
        while true {
            deliverAll()
            if seconds >= Self.quiesceSeconds || (quiescentProblems(sessionsBefore).isEmpty && stable()) { break }
            nowMs += 1000
            seconds += 1
            tickAll()
            settle()
        }
        trace?.append("-- stable after \(seconds) s")
        for p in quiescentProblems(sessionsBefore) { violations.append(("quiescence", p)) }
    }

    /// Nothing that can still change a registry: no claim waiting, no early message held.
    func stable() -> Bool {
        guard silent else { return false }
        for i in 0..<n where alive[i] {
            let c = nodes[i].cluster
            for r in c.nodes.values where !r.control.held.isEmpty || r.chat.values.contains(where: { !$0.held.isEmpty }) {
                return false
            }
            let pending = Mirror(reflecting: c).children.first { $0.label == "pending" }?.value as? [String: Cluster.PendingClaim]
            if pending == nil || !pending!.isEmpty { return false }
        }
        return true
    }

    /// What is wrong with this state as the end of a quiescence run.
    func quiescentProblems(_ sessionsBefore: [Int]) -> [String] {
        var out: [String] = []
        let liveIdx = (0..<n).filter { alive[$0] }
        for a in liveIdx { for b in liveIdx where a != b && !queues[a][b].isEmpty {
            out.append("\(letter(a))→\(letter(b)) never fell silent")
        } }
        for i in liveIdx {
            let want = Set(liveIdx.filter { $0 != i }.map { nodes[$0].id })
            if Set(nodes[i].cluster.liveNodes) != want {
                out.append("\(letter(i)) lists \(nodes[i].cluster.liveNodes.map { pretty($0.text) }.sorted()) as live")
            }
        }
        for m in 0..<bounds.names {
            let name = Self.names[m]
            for i in liveIdx where live[i][m]?.state == .pending { out.append("login \(name) on \(letter(i)) never answered") }
            let h = holders(m)
            if h.count > 1 { out.append("\(name) held on \(h.map(letter)) after the merge") }
            if sessionsBefore[m] > 0 && h.isEmpty && !leftDuringConflict[m] { out.append("\(name): \(sessionsBefore[m]) session(s) before the merge, none after") }
            if loginsOf[m] > 0 && !disturbed[m] && h.count != 1 {
                out.append("\(name): logged in \(loginsOf[m])×, never logged out, yet held by \(h.count) sessions")
            }
            // Every live registry holds exactly the record of the one session, or nothing.
            var want: [ClaimRegistry.Record] = []
            if h.count == 1 {
                if let own = nodes[h[0]].cluster.registry.own(name), own.granted {
                    want = [ClaimRegistry.Record(holder: nodes[h[0]].id, ts: own.ts, granted: true)]
                } else {
                    out.append("\(letter(h[0])) holds a session of \(name) without its own granted record")
                }
            }
            for i in liveIdx {
                let got = (nodes[i].cluster.registry.records[name] ?? []).map { ClaimRegistry.Record(holder: $0.holder, ts: $0.ts, granted: $0.granted) }
                if got != want {
                    out.append("\(letter(i)) records \(name) as \(describe(got)), expected \(describe(want))")
                }
            }
        }
        return out
    }

    func describe(_ rs: [ClaimRegistry.Record]) -> String {
        rs.isEmpty ? "nothing" : rs.map { "\(pretty($0.holder.text)):\(pretty(String($0.ts)))\($0.granted ? "" : "(in flight)")" }.joined(separator: ",")
    }

    // MARK: Fingerprint

    /// Everything that decides what can happen next, canonical (dictionaries and sets sorted).
    func canonicalState() -> String {
        var c = ClaimModelCanon()
        c.out += "t\(nowMs);b\(loginsOf),\(drops),\(cuts),\(heals),\(crashes),\(waits),\(expires);d\(disturbed)\(leftDuringConflict);"
        for i in 0..<n {
            c.out += "|\(i):"
            guard alive[i] else { c.out += "dead"; continue }
            c.write(cluster: nodes[i].cluster)
            c.out += "/"
            c.write(hub: nodes[i].hub)
            for m in 0..<bounds.names {
                if let s = live[i][m] { c.out += "/L\(m)\(s.state)\(s.contact)" }
            }
        }
        for a in 0..<n { for b in 0..<n where a != b {
            c.out += "|\(a)\(b)\(up[a][b] ? "+" : "-")"
            for l in queues[a][b] { c.out += l; c.out += "\u{1}" }
        } }
        return c.out
    }

    func fingerprint() -> ClaimModelFingerprint { ClaimModelFingerprint(canonicalState()) }

    // MARK: Readable traces

    /// Node ids as A/B/C, claim timestamps as `T+<ms>.<counter>`.
    func pretty(_ s: String) -> String {
        var out = s
        for (i, id) in Self.ids.enumerated() { out = out.replacingOccurrences(of: id, with: Self.letters[i]) }
        let words = out.split(separator: " ", omittingEmptySubsequences: false).map { w -> String in
            var parts: [String] = []
            for piece in w.split(separator: ",", omittingEmptySubsequences: false) {
                let sub = piece.split(separator: ":", omittingEmptySubsequences: false).map { p -> String in
                    if let v = UInt64(p), v > (wallBase << 16) / 2 {
                        return "T+\((v >> 16) - wallBase)ms.\(v & 0xFFFF)"
                    }
                    return String(p)
                }
                parts.append(sub.joined(separator: ":"))
            }
            return parts.joined(separator: ",")
        }
        return words.joined(separator: " ")
    }

    func summary() -> String {
        var lines: [String] = []
        for i in 0..<n {
            guard alive[i] else { lines.append("   \(letter(i)): crashed"); continue }
            let regs = Self.names.prefix(bounds.names).map { "\($0)=\(describe(nodes[i].cluster.registry.records[$0] ?? []))" }
            let sess = nodes[i].hub.sessions.keys.sorted()
            lines.append("   \(letter(i)): sessions \(sess), live \(nodes[i].cluster.liveNodes.map { pretty($0.text) }.sorted()), registry \(regs.joined(separator: " "))")
        }
        return lines.joined(separator: "\n")
    }
}

// MARK: - Canonical reflection and the fingerprint

/// Writes any value as canonical text: stored properties in declaration order, dictionaries
/// and sets sorted, references to sessions and rooms by name. Private properties included:
/// `Cluster` and `Hub` are walked by reflection, so a property added to them is included
/// without anyone touching this file. The types written by hand for speed are listed in
/// `shapes`; `checkShapes()` fails the run when one of them gained or lost a property.
struct ClaimModelCanon {
    var out = ""
    /// Not state: back references, callbacks, constants, counters that decide nothing.
    static let skipped: Set<String> = [
        "hub", "cluster", "transport", "clock", "onClaimSettled", "preciseNowUs", "stats", "sink",
        "limits", "accepted", "malformed", "nameTaken", "exit", "tooLong", "invalidUTF8",
        "controlCharacter", "rateLimited", "nameLost", "me", "advertise", "heartbeatMs", "peerTimeoutMs",
        "startedUs", "onEvent", "transitCache",
    ]

    /// The stored properties of every type written by hand below, as this file knows them.
    static var shapes: [(String, Any, [String])] { [
        ("Cluster.RemoteNode", Cluster.RemoteNode(advertise: "", lastHeardMs: 0),
         ["advertise", "neighbors", "rooms", "sessions", "roomMembers", "lastHeardMs", "neighborsVersion", "neighborList", "neighborsKnown",
          "suspectSinceMs", "control", "chat"]),
        ("OriginStream", OriginStream(), ["delivered", "started", "held", "lastMs"]),
        ("Cluster.PendingClaim", Cluster.PendingClaim(ts: 0, waiting: [:], sentMs: 0, startedUs: 0),
         ["ts", "waiting", "sentMs", "startedUs", "startedMs"]),
        ("ClaimRegistry", ClaimRegistry(me: NodeID("0000000000000000")!), ["me", "records"]),
        ("ClaimRegistry.Record", ClaimRegistry.Record(holder: NodeID("0000000000000000")!, ts: 0, granted: false),
         ["holder", "ts", "granted", "heardMs"]),
        ("HybridClock", HybridClock(), ["last"]),
    ] }

    /// Problems with `shapes`, empty when this file still knows every property.
    static func checkShapes() -> [String] {
        var out: [String] = []
        for (name, value, labels) in shapes {
            let got = Mirror(reflecting: value).children.map { $0.label ?? "_" }
            if got != labels { out.append("\(name) now has \(got), the fingerprint knows \(labels): update ClaimModelCanon") }
        }
        return out
    }

    private mutating func sorted<K, V>(_ d: [K: V], key: (K) -> String, value: (inout ClaimModelCanon, V) -> Void) {
        var parts: [(String, String)] = []
        for (k, v) in d {
            var sub = ClaimModelCanon()
            value(&sub, v)
            parts.append((key(k), sub.out))
        }
        parts.sort { $0.0 < $1.0 }
        out += "{"
        for (k, v) in parts { out += k; out += ":"; out += v; out += "," }
        out += "}"
    }

    private mutating func stream(_ st: OriginStream) {
        out += "\(st.delivered)\(st.started ? "s" : "-")@\(st.lastMs)"
        if !st.held.isEmpty {
            for k in st.held.keys.sorted() { out += "h\(k)@\(st.held[k]!.deadlineMs):\(st.held[k]!.0.encoded)" }
        }
    }

    /// Properties read directly (public or internal), not through reflection.
    static let direct: Set<String> = ["nodes", "neighbors", "registry", "sessions", "rooms", "announced"]

    /// Offsets, among a type's reflected children, of the properties written by reflection:
    /// all but the skipped and the direct ones. Computed once from a throwaway core.
    static let reflected: (cluster: [(Int, String)], hub: [(Int, String)]) = {
        let hub = Hub(limits: Limits())
        let cluster = Cluster(me: NodeID("0000000000000000")!, advertise: "x:1", hub: hub)
        func offsets(_ x: AnyObject) -> [(Int, String)] {
            Mirror(reflecting: x).children.enumerated().compactMap { k, c in
                guard let l = c.label, !skipped.contains(l), !direct.contains(l) else { return nil }
                return (k, l)
            }
        }
        return (offsets(cluster), offsets(hub))
    }()

    private mutating func reflect(_ x: AnyObject, _ offsets: [(Int, String)]) {
        let kids = Mirror(reflecting: x).children
        for (k, label) in offsets {
            let value = kids[kids.index(kids.startIndex, offsetBy: k)].value
            out += label
            out += "="
            switch value {
            case let v as UInt64: out += String(v)
            case let v as String: out += v
            case let v as HybridClock: out += String(v.last)
            case let v as Set<NodeID>: write(v)
            case let v as [String: UInt64]: sorted(v, key: { $0 }, value: { $0.out += String($1) })
            case let v as [String: Cluster.PendingClaim]: write(v)
            case let v as [String: Hub.PendingLogin]:
                sorted(v, key: { $0 }) { c, p in c.out += "\(p.username.display)@\(p.chatID.key)\(p.framing)" }
            default: write(value)
            }
            out += ";"
        }
    }

    /// A cluster core: every stored property but the skipped ones.
    mutating func write(cluster c: Cluster) {
        out += "nodes="; write(c.nodes)
        out += ";neighbors="; write(c.neighbors)
        out += ";registry="; write(c.registry)
        out += ";"
        reflect(c, Self.reflected.cluster)
    }

    /// A hub: every stored property but the skipped ones.
    mutating func write(hub h: Hub) {
        out += "sessions="
        sorted(h.sessions, key: { $0 }) { c, s in c.out += "\(s.username.display)@\(s.chatID.key)" }
        out += ";rooms="
        sorted(h.rooms, key: { $0 }) { c, r in c.out += r.members.map { $0.session.username.key }.sorted().joined(separator: ",") }
        out += ";announced="; write(h.announced)
        out += ";"
        reflect(h, Self.reflected.hub)
    }

    mutating func write(_ v: Set<NodeID>) { out += v.map(\.text).sorted().joined(separator: ",") }
    mutating func write(_ v: Set<String>) { out += v.sorted().joined(separator: ",") }

    mutating func write(_ v: ClaimRegistry) {
        sorted(v.records, key: { $0 }) { c, list in
            for r in list { c.out += "\(r.holder.text)@\(r.ts)\(r.granted ? "g" : "p")\(r.heardMs);" }
        }
    }

    mutating func write(_ v: [String: Cluster.PendingClaim]) {
        sorted(v, key: { $0 }) { c, p in
            c.out += "\(p.ts)w"
            c.sorted(p.waiting, key: { $0.text }, value: { $0.out += String($1) })
            c.out += "@\(p.sentMs)s\(p.startedMs)"
        }
    }

    mutating func write(_ v: [NodeID: Cluster.RemoteNode]) {
        sorted(v, key: { $0.text }) { c, r in
            c.out += r.advertise; c.out += "n"; c.write(r.neighbors); c.out += "r"; c.write(r.rooms)
            c.out += "s\(r.sessions)"
            c.sorted(r.roomMembers, key: { $0 }, value: { $0.out += String($1) })
            c.out += "h\(r.lastHeardMs)v\(r.neighborsVersion)\(r.neighborsKnown ? "k" : "u")"
            if let since = r.suspectSinceMs { c.out += "s\(since)" }
            c.out += "c"
            c.stream(r.control)
            c.sorted(r.chat, key: { $0 }, value: { $0.stream($1) })
        }
    }

    mutating func write(_ x: Any) {
        switch x {
        case let s as String: out += s; return
        case let v as UInt64: out += String(v); return
        case let v as Int: out += String(v); return
        case let v as Bool: out += v ? "1" : "0"; return
        case let v as NodeID: out += v.text; return
        case let v as ChatName: out += v.display; return
        case let v as PeerMessage: out += v.encoded; return
        case let s as Session: out += "S(\(s.username.display)@\(s.chatID.key))"; return
        case let r as Room: out += "R(\(r.id.key):\(r.members.map { $0.session.username.key }.sorted()))"; return
        case is Payload: return
        case let v as Set<NodeID>: write(v); return
        case let v as Set<String>: write(v); return
        case let v as HybridClock: out += String(v.last); return
        case let v as [String: UInt64]: sorted(v, key: { $0 }, value: { $0.out += String($1) }); return
        case let v as [String: Session]: sorted(v, key: { $0 }, value: { $0.write($1) }); return
        case let v as [String: Room]: sorted(v, key: { $0 }, value: { $0.write($1) }); return
        case let v as ClaimRegistry: write(v); return
        case let v as [String: Cluster.PendingClaim]: write(v); return
        case let v as [NodeID: Cluster.RemoteNode]: write(v); return
        default: break
        }
        let m = Mirror(reflecting: x)
        switch m.displayStyle {
        case .optional:
            if let c = m.children.first { write(c.value) } else { out += "nil" }
        case .dictionary, .set:
            var parts: [String] = []
            for c in m.children {
                var sub = ClaimModelCanon()
                sub.write(c.value)
                parts.append(sub.out)
            }
            out += "{" + parts.sorted().joined(separator: ",") + "}"
        case .collection:
            out += "["
            for c in m.children { write(c.value); out += "," }
            out += "]"
        case .enum where m.children.isEmpty:
            out += String(describing: x)
        default:
            if m.children.isEmpty { out += String(describing: x); return }
            out += "("
            for c in m.children where !Self.skipped.contains(c.label ?? "") {
                out += c.label ?? "_"
                out += "="
                write(c.value)
                out += ";"
            }
            out += ")"
        }
    }
}

/// 128 bits of FNV-1a (two lanes) over the canonical text: deterministic across runs.
struct ClaimModelFingerprint: Hashable {
    let a: UInt64
    let b: UInt64
    init(_ s: String) {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325
        var b: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in s.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_0129 ^ (b >> 29)
        }
        self.a = a
        self.b = b
    }
}

// MARK: - The checker

struct ClaimModelResult {
    var states = 0
    var transitions = 0
    var depth = 0
    /// True when the frontier ran empty: every reachable state within the bounds was seen.
    var exhausted = false
    var seconds = 0.0
    /// The first (shortest) counterexample per property kind.
    var counterexamples: [String: (trace: [ClaimModelAction], detail: String)] = [:]
    var statesPerDepth: [Int] = []
    /// States whose quiescence run was checked.
    var quiesced = 0
    /// Stopped at `stateLimit`.
    var limited = false
    /// States queued again for actions a smaller sleep set no longer covers.
    var revisits = 0
}

/// Breadth-first exploration by replay: the frontier holds action sequences, `visited`
/// the fingerprints of every state seen. Breadth-first, so the first counterexample found
/// for a property is a shortest one.
struct ClaimModelChecker {
    let bounds: ClaimModelBounds
    /// Kinds that are recorded but do not stop a state from being expanded, nor fail a test.
    var diagnostic: Set<String> = ["literal"]
    func isDiagnostic(_ kind: String) -> Bool { diagnostic.contains(String(kind.prefix { $0 != " " })) }

    /// Two actions that commute and never disable each other, whatever the state: deliveries
    /// (or a delivery and a loss) on links into different nodes. A delivery changes only its
    /// receiver's core and appends to the receiver's outgoing queues (never to the front of
    /// a non-empty queue), never removes a node from a core's live nodes (so the contact
    /// ghosts do not move), and a loss touches only the head of its own queue.
    static func independent(_ a: ClaimModelAction, _ b: ClaimModelAction) -> Bool {
        switch (a, b) {
        case let (.deliver(_, y), .deliver(_, v)): return y != v
        case let (.deliver(x, y), .drop(u, v)), let (.drop(u, v), .deliver(x, y)): return (x, y) != (u, v)
        default: return false
        }
    }

    struct Entry {
        var path: [ClaimModelAction]
        /// Actions whose exploration from here is covered by a sibling's (sleep set).
        var sleep: [ClaimModelAction]
        /// On a revisit with a smaller sleep set: only these actions are new to explore.
        var only: [ClaimModelAction]?
    }

    /// Breadth-first search with sleep sets (Godefroid) and state caching: a state seen again
    /// with a sleep set that misses actions its stored one had is expanded again for those
    /// actions only. Sleep sets skip transitions, never states: every reachable state is
    /// still visited and checked (the tests compare the counts with and without).
    func run() -> ClaimModelResult {
        let clock = ContinuousClock()
        let start = clock.now
        var result = ClaimModelResult()
        for p in ClaimModelCanon.checkShapes() { result.counterexamples["fingerprint"] = ([], p) }
        /// Per state: the sleep set it was last queued with, and whether it is expanded at all.
        var visited: [ClaimModelFingerprint: (sleep: [ClaimModelAction], expand: Bool)] = [:]
        let w0 = ClaimModelWorld(bounds)
        result.states = 1
        let expand0 = check(w0, [], &result)
        visited[w0.fingerprint()] = ([], expand0)
        var frontier: [Entry] = expand0 ? [Entry(path: [], sleep: [], only: nil)] : []
        result.statesPerDepth = [1]
        var depth = 0
        outer: while !frontier.isEmpty && depth < bounds.maxDepth {
            var next: [Entry] = []
            var fresh = 0
            for e in frontier {
                let parent = ClaimModelWorld.replay(bounds, e.path)
                var actions = parent.enabled().filter { !e.sleep.contains($0) }
                if let only = e.only { actions = actions.filter { only.contains($0) } }
                var done: [ClaimModelAction] = []
                for (k, a) in actions.enumerated() {
                    let sleep = bounds.sleepSets ? (e.sleep + done).filter { Self.independent(a, $0) } : []
                    done.append(a)
                    let w = k == 0 ? parent : ClaimModelWorld.replay(bounds, e.path)
                    w.apply(a)
                    result.transitions += 1
                    let fp = w.fingerprint()
                    let path = e.path + [a]
                    if let old = visited[fp] {
                        // Seen: explore again only what the old sleep set skipped and this one does not.
                        guard old.expand, bounds.sleepSets else { continue }
                        let missing = old.sleep.filter { !sleep.contains($0) }
                        guard !missing.isEmpty else { continue }
                        let kept = old.sleep.filter { sleep.contains($0) }
                        visited[fp] = (kept, true)
                        result.revisits += 1
                        next.append(Entry(path: path, sleep: kept, only: missing))
                        continue
                    }
                    result.states += 1
                    fresh += 1
                    let expand = check(w, path, &result)
                    visited[fp] = (sleep, expand)
                    if expand { next.append(Entry(path: path, sleep: sleep, only: nil)) }
                    if bounds.stateLimit > 0 && result.states >= bounds.stateLimit { result.limited = true; break outer }
                    if bounds.stopAtFirst && result.counterexamples.keys.contains(where: { !isDiagnostic($0) }) {
                        result.limited = true
                        break outer
                    }
                }
            }
            depth += 1
            if fresh > 0 { result.depth = depth; result.statesPerDepth.append(fresh) }
            frontier = next
        }
        result.exhausted = frontier.isEmpty && !result.limited
        let d = clock.now - start
        result.seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return result
    }

    /// Checks a new state (its invariants, then its quiescence run); true when it is expanded.
    private func check(_ w: ClaimModelWorld, _ path: [ClaimModelAction], _ result: inout ClaimModelResult) -> Bool {
        var expand = true
        for v in w.violations {
            if result.counterexamples[v.kind] == nil { result.counterexamples[v.kind] = (path, v.detail) }
            if !isDiagnostic(v.kind) { expand = false }
        }
        // Every state reaches a silent one by deliveries alone (always enabled, never
        // budgeted), whose quiescence run continues this one's: quiescing the silent states
        // (and the leaves of a depth-bounded run) covers them all.
        guard expand, bounds.quiesce, w.silent || path.count >= bounds.maxDepth else { return expand }
        result.quiesced += 1
        let before = w.violations.count
        w.quiesce()
        for v in w.violations.dropFirst(before) {
            let kind = v.kind == "safety" || v.kind == "sanity" || v.kind == "literal" ? v.kind + " (while quiescing)" : v.kind
            if result.counterexamples[kind] == nil { result.counterexamples[kind] = (path, v.detail) }
        }
        return true
    }

    /// The counterexample replayed with a readable account of each step.
    func explain(_ trace: [ClaimModelAction], quiesce: Bool) -> String {
        let w = ClaimModelWorld(bounds, tracing: true)
        for a in trace {
            w.apply(a)
        }
        var lines = w.trace!
        lines.append("state:\n" + w.summary())
        if quiesce {
            w.trace = []
            w.quiesce()
            lines.append("after quiescence:\n" + w.summary())
        }
        for v in w.violations { lines.append("!! \(v.kind): \(v.detail)") }
        return lines.joined(separator: "\n")
    }
}
