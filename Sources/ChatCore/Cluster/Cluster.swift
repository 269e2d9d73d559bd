/// What the runtime logs (rate-limited) or counts about the cluster's defences.
public enum ClusterEvent: Equatable, Sendable {
    /// A message of a new origin was ignored: the node already tracks `Cluster.maxNodes`.
    case tooManyNodes(NodeID)
    /// A node that is heard from did not answer a claim within the peer timeout.
    case unresponsive(NodeID)
    /// A BYE for a neighbor came from another neighbor, not on the neighbor's own link.
    case byeIgnored(origin: NodeID, via: NodeID)
}

/// Where a cluster's bytes go: the runtime's peer links. Called on the node's loop thread only.
public protocol ClusterTransport: AnyObject {
    /// Queues one encoded line (with its `\n`) on the link to a direct neighbor.
    func send(_ line: Payload, to neighbor: NodeID)
    /// A node and the address it can be dialed at became known: link to it if not linked.
    func learned(node: NodeID, address: String)
}

/// One node's view of the cluster and its part in the protocol (SPEC.md §4,
/// docs/cluster-protocol.md): membership and liveness, flooding with de-duplication,
/// routing of room messages to the nodes that have members in the room, and the
/// username claims. No I/O: the runtime hands it lines and link events, and a clock.
/// Called on the node's loop thread only.
public final class Cluster {
    public let me: NodeID
    public let advertise: String
    public let heartbeatMs: UInt64
    public let peerTimeoutMs: UInt64
    unowned let hub: Hub
    public unowned(unsafe) var transport: (any ClusterTransport)?
    /// Monotonic and wall-clock milliseconds, from the runtime (tests pass their own).
    public var clock: () -> (nowMs: UInt64, wallMs: UInt64) = { (0, 0) }

    /// A remote node this one has heard from within the timeout.
    public struct RemoteNode: Sendable {
        public var advertise: String
        public var neighbors: Set<NodeID> = []
        public var rooms: Set<String> = []
        /// Its sessions and members per room, from its latest LOAD (for status).
        public var sessions = 0
        public var roomMembers: [String: Int] = [:]
        public var lastHeardMs: UInt64
        /// Its control stream, and its chat stream in each room, as seen here.
        var control = Stream()
        var chat: [String: Stream] = [:]
    }

    /// One origin's numbered stream (docs/cluster-protocol.md §4): everything up to
    /// `delivered` was handled in order; later messages that arrived early wait in `held`
    /// for the gap to fill (a message still on its way by a longer path), at most `holdMs`.
    struct Stream {
        /// Zero until the first message: the first one seen sets the start.
        var delivered: UInt64 = 0
        var started = false
        var held: [UInt64: (PeerMessage, deadlineMs: UInt64)] = [:]
        /// When its last message came: chat streams idle for `streamIdleMs` are forgotten.
        var lastMs: UInt64 = 0

        func seen(_ seq: UInt64) -> Bool { (started && seq <= delivered) || held[seq] != nil }
    }
    /// How long an early message waits for the ones before it.
    static let holdMs: UInt64 = 500
    /// For this long after a link came or went, a new stream's first message may not be its earliest.
    static let settleMs: UInt64 = 2000
    private var lastTopologyChangeMs: UInt64 = 0
    /// Past this many early messages in one stream, the gap is given up at once.
    static let maxHeld = 10_000

    public private(set) var nodes: [NodeID: RemoteNode] = [:]
    /// Nodes with a link to this one.
    public private(set) var neighbors: Set<NodeID> = []
    public private(set) var registry: ClaimRegistry
    /// Nodes that said BYE or did not answer a claim, until when their messages are ignored
    /// (late copies of a departed node's messages; docs/cluster-protocol.md §5).
    private var departed: [NodeID: UInt64] = [:]
    /// A STATE a new origin asked for, waiting for `stateMinIntervalMs` to pass.
    private var stateWanted = false
    /// Paces the STATEs that new links and origins ask for (`statesPerSecond`, burst 2×).
    private var stateBudget = RateLimiter(rate: Cluster.statesPerSecond, nowMs: 0)
    /// Something the runtime should log or count (bounded by the runtime's log limiter).
    public var onEvent: ((ClusterEvent) -> Void)?
    private var hlc = HybridClock()
    private var controlSeq: UInt64 = 0
    private var roomSeqs: [String: UInt64] = [:]
    /// Rooms of `roomSeqs` without local members, and since when (swept with the streams).
    private var roomSeqsUnusedSince: [String: UInt64] = [:]
    private var lastHeartbeatMs: UInt64 = 0

    struct PendingClaim {
        var ts: UInt64
        /// Nodes whose answer the claim waits for, and since when (monotonic ms).
        var waiting: [NodeID: UInt64]
        var sentMs: UInt64
        let startedUs: UInt64
    }
    /// Called with the microseconds each claim that asked the cluster took to settle (metrics).
    public var onClaimSettled: ((UInt64) -> Void)?
    /// A precise monotonic clock in microseconds, for claim latency.
    public var preciseNowUs: () -> UInt64 = { 0 }
    private var lastLoad = ""
    private var lastLoadMs: UInt64 = 0
    /// How often member counts are shared, when they changed.
    static let loadEveryMs: UInt64 = 2000
    /// How often a node repeats its whole state; claims in flight not heard of again for
    /// this long are forgotten (their node resends them every second while they wait).
    static let stateEveryMs: UInt64 = 10_000
    private var lastStateMs: UInt64 = 0
    private var pending: [String: PendingClaim] = [:]
    /// How often an unanswered claim is sent again (replies lost with a link).
    static let claimResendMs: UInt64 = 1000
    /// Most remote nodes one node tracks; messages of further origins are ignored.
    public static let maxNodes = Limits.maxClusterNodes
    /// How long the messages of a node that said BYE, or did not answer a claim, are ignored.
    public static let departedMs: UInt64 = 10_000
    /// STATEs per second sent because a link or an origin appeared (burst twice that).
    static let statesPerSecond = 4
    /// A chat stream that carried nothing for this long is forgotten.
    /// (Ten peer timeouts: far longer than any late copy can take.)
    var streamIdleMs: UInt64 { 10 * peerTimeoutMs }
    /// A room of ours with no member for this long stops being numbered: by then every
    /// node has forgotten our stream in it (`streamIdleMs`, checked every `stateEveryMs`),
    /// so its next message can start a new stream at 1.
    var roomSequenceIdleMs: UInt64 { 2 * streamIdleMs + Cluster.stateEveryMs }
    /// Most rooms of one LOAD kept for status.
    static let maxLoadRooms = 100_000

    public init(me: NodeID, advertise: String, hub: Hub, heartbeatMs: UInt64 = 1000, peerTimeoutMs: UInt64 = 3000) {
        self.me = me
        self.advertise = advertise
        self.hub = hub
        self.heartbeatMs = heartbeatMs
        self.peerTimeoutMs = peerTimeoutMs
        registry = ClaimRegistry(me: me)
    }

    /// How long a claim waits for one node's answer (asked, then asked again every
    /// `claimResendMs`) before that node counts as failed: the peer timeout and one resend.
    public var claimAnswerMs: UInt64 { peerTimeoutMs + Cluster.claimResendMs }

    /// Nodes this one believes alive, itself excluded.
    public var liveNodes: [NodeID] { Array(nodes.keys) }

    // MARK: Links

    public func linkUp(_ neighbor: NodeID, advertise addr: String, nowMs: UInt64) {
        neighbors.insert(neighbor)
        // Remembered for redialing: if the neighbor dialed us and dies, it may come back there.
        transport?.learned(node: neighbor, address: addr)
        lastTopologyChangeMs = nowMs
        if nodes[neighbor] == nil {
            nodes[neighbor] = RemoteNode(advertise: addr, lastHeardMs: nowMs)
            askNewNode(neighbor, nowMs: nowMs)
        }
        // The topology changed, and the neighbor (and all behind it) may not know us yet.
        sendHeartbeat(nowMs: nowMs)
        requestState(nowMs: nowMs)
        lastLoad = ""
        lastLoadMs = 0
    }

    public func linkDown(_ neighbor: NodeID, nowMs: UInt64) {
        guard neighbors.remove(neighbor) != nil else { return }
        lastTopologyChangeMs = nowMs
        sendHeartbeat(nowMs: nowMs)
    }

    // MARK: Input from peers

    /// One line received from a neighbor (without `\n`). Throws on a malformed message:
    /// the runtime then drops that link.
    public func receive(line: Substring, from neighbor: NodeID, nowMs: UInt64, wallMs: UInt64) throws {
        let msg = try PeerMessage.decode(line)
        guard let f = msg.flood else { throw PeerCodecError.malformed("handshake message on an open link") }
        // Refuse before anything else, so a bad line is never forwarded to honest nodes.
        if case .chat(_, _, _, let text) = msg, !acceptableChat(text) {
            throw PeerCodecError.malformed("chat text refused by the text rules")
        }
        var raw = String(line)
        try raw.withUTF8 { raw in
            try ingest(f, room: msg.chatRoom, raw: UnsafeRawBufferPointer(raw), from: neighbor, nowMs: nowMs,
                       wallMs: wallMs, message: { msg }, applyNow: { try self.apply(msg, f, nowMs: nowMs, wallMs: wallMs) })
        }
    }

    /// One line as bytes (without `\n`), as the runtime reads it. Chat, nearly all of a
    /// cluster's traffic, is parsed straight from the bytes and delivered without building
    /// Strings for its text or the message enum (`PeerChat`); anything else, or a MSG that
    /// has to wait for an earlier one, takes the general path.
    public func receive(bytes: UnsafeRawBufferPointer, from neighbor: NodeID, nowMs: UInt64, wallMs: UInt64) throws {
        if idCache.count > 4096 { idCache.removeAll() }
        guard let c = try PeerChat.parse(bytes, ids: &idCache) else {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw PeerCodecError.malformed("line is not UTF-8") }
            return try receive(line: Substring(text), from: neighbor, nowMs: nowMs, wallMs: wallMs)
        }
        guard acceptableChat(c.text) else { throw PeerCodecError.malformed("chat text refused by the text rules") }
        try ingest(c.flood, room: c.room, raw: bytes, from: neighbor, nowMs: nowMs, wallMs: wallMs,
                   message: { .chat(c.flood, room: c.room, user: c.user, text: String(decoding: c.text, as: UTF8.self)) },
                   applyNow: { self.stats.fastChat += 1; self.hub.deliverRemote(roomKey: c.room, user: c.user, text: c.text) })
    }

    /// Node ids of chat origins by value, so a MSG does not allocate its origin's id.
    private var idCache: [UInt64: NodeID] = [:]
    /// How often chat took the byte path (tests check that it is the one used).
    struct Stats { var fastChat = 0 }
    private(set) var stats = Stats()

    /// The flooding rules for one message (docs/cluster-protocol.md §4): de-duplication,
    /// forwarding, and delivery in each origin's order, holding early messages back.
    /// `applyNow` handles this message when it is in order; `message` builds it when it
    /// must wait.
    private func ingest(_ f: Flood, room: String?, raw: UnsafeRawBufferPointer, from neighbor: NodeID, nowMs: UInt64,
                        wallMs: UInt64, message: () -> PeerMessage, applyNow: () throws -> Void) throws {
        if f.origin == me { return }
        // A neighbor says BYE on its own link. A BYE for it by another path (a member
        // forging its id, or a copy that overtook the real one) is dropped before it is
        // sequenced: held as an early message, a far-ahead seq would otherwise take the
        // neighbor's control stream when its gap is given up (docs/cluster-protocol.md §5).
        if room == nil, neighbors.contains(f.origin), neighbor != f.origin, case .bye = message() {
            onEvent?(.byeIgnored(origin: f.origin, via: neighbor))
            return
        }
        if let until = departed[f.origin] {
            if nowMs < until { return }
            departed[f.origin] = nil
        }
        var isNew = false
        if nodes[f.origin] == nil {
            // Every origin costs state on every node: past the bound, strangers are ignored
            // (and not forwarded) until known nodes time out.
            guard nodes.count < Cluster.maxNodes else {
                onEvent?(.tooManyNodes(f.origin))
                return
            }
            nodes[f.origin] = RemoteNode(advertise: "", lastHeardMs: nowMs)
            isNew = true
        }
        nodes[f.origin]!.lastHeardMs = nowMs
        var stream = room.map { nodes[f.origin]!.chat[$0] ?? Stream() } ?? nodes[f.origin]!.control
        stream.lastMs = nowMs
        // A copy that came by another path: links are FIFO, so copies are all a flood costs.
        if stream.seen(f.seq) { return }
        let forwardTo = targets(origin: f.origin, from: neighbor, room: room)
        if !forwardTo.isEmpty {
            let payload = Payload.line(prefix: [], text: raw)
            for q in forwardTo { transport?.send(payload, to: q) }
        }
        var before: [PeerMessage] = [], after: [PeerMessage] = []
        var current = false
        // A stream's first message starts it, unless the topology just changed: then an
        // earlier message may still be on its way by the old, longer path.
        // (Chat only: control messages are never held back at a stream's start.)
        let mayHaveEarlier = room != nil && !stream.started && f.seq > 1 && nowMs < lastTopologyChangeMs + Cluster.settleMs
        if (!stream.started && !mayHaveEarlier) || (stream.started && f.seq == stream.delivered + 1)
            || (!stream.started && stream.held.isEmpty == false && f.seq < stream.held.keys.min()!) {
            if !stream.started {
                for seq in stream.held.keys.sorted() where seq < f.seq {
                    before.append(stream.held.removeValue(forKey: seq)!.0)
                }
            }
            stream.started = true
            stream.delivered = f.seq
            current = true
            while !stream.held.isEmpty, let (next, _) = stream.held.removeValue(forKey: stream.delivered + 1) {
                stream.delivered += 1
                after.append(next)
            }
        } else {
            // Early: an earlier message is still on its way by a longer path (a shortcut link
            // just came up). Wait for it, briefly.
            stream.held[f.seq] = (message(), nowMs + Cluster.holdMs)
            if stream.held.count > Cluster.maxHeld { after = Cluster.giveUpGap(&stream) }
        }
        store(stream, origin: f.origin, room: room)
        for m in before { try apply(m, m.flood!, nowMs: nowMs, wallMs: wallMs) }
        if current { try applyNow() }
        for m in after { try apply(m, m.flood!, nowMs: nowMs, wallMs: wallMs) }
        if isNew && nodes[f.origin] != nil {
            // A node we did not know (a join, or a partition healing): claims wait for it from
            // now on (not for the message that made it known: a stranger's first word is no
            // answer to a claim), and it learns our state.
            askNewNode(f.origin, nowMs: nowMs)
            requestState(nowMs: nowMs)
        }
    }

    private func store(_ stream: Stream, origin: NodeID, room: String?) {
        guard nodes[origin] != nil else { return }
        if let room { nodes[origin]!.chat[room] = stream } else { nodes[origin]!.control = stream }
    }

    /// Skips a gap that did not fill: hands out what waited, in order. The missing messages
    /// are lost (never reordered); late copies of them count as seen.
    private static func giveUpGap(_ stream: inout Stream) -> [PeerMessage] {
        var out: [PeerMessage] = []
        for seq in stream.held.keys.sorted() where !stream.started || seq > stream.delivered {
            out.append(stream.held[seq]!.0)
            stream.delivered = seq
        }
        stream.held.removeAll()
        stream.started = true
        return out
    }

    /// Gaps that waited long enough are given up (called from `tick`).
    private func releaseExpiredHolds(nowMs: UInt64, wallMs: UInt64) {
        for (id, n) in nodes {
            var due: [(String?, Stream)] = []
            if n.control.held.values.contains(where: { $0.deadlineMs <= nowMs }) { due.append((nil, n.control)) }
            for (room, st) in n.chat where st.held.values.contains(where: { $0.deadlineMs <= nowMs }) { due.append((room, st)) }
            for (room, var st) in due {
                let ready = Cluster.giveUpGap(&st)
                store(st, origin: id, room: room)
                for m in ready { try? apply(m, m.flood!, nowMs: nowMs, wallMs: wallMs) }
            }
        }
    }

    private func acceptableChat(_ text: String) -> Bool {
        var t = text
        return t.withUTF8 { acceptableChat(UnsafeRawBufferPointer($0)) }
    }

    private func acceptableChat(_ u: UnsafeRawBufferPointer) -> Bool {
        !u.isEmpty && u.count <= hub.limits.maxMessageBytes && TextCheck.problem(in: u) == nil
    }

    /// Handles one message in its origin's order.
    private func apply(_ msg: PeerMessage, _ f: Flood, nowMs: UInt64, wallMs: UInt64) throws {
        let o = f.origin
        switch msg {
        case .hello, .auth, .error:
            break
        case let .heartbeat(_, addr, list):
            nodes[o]?.advertise = addr
            let set = Set(list)
            if nodes[o]?.neighbors != set { lastTopologyChangeMs = nowMs }
            nodes[o]?.neighbors = set
            transport?.learned(node: o, address: addr)
        case let .state(_, rooms, claims):
            nodes[o]?.rooms = Set(rooms)
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
        case let .room(_, joined, room):
            if joined { nodes[o]?.rooms.insert(room) } else { nodes[o]?.rooms.remove(room) }
        case let .claim(_, c):
            hlc.observe(c.ts, wallMs: wallMs)
            let (yes, lost) = registry.answer(c, from: o, nowMs: nowMs)
            flood(.reply(next(), claimant: o, c, granted: yes))
            if let lost { failLocal(c.name, ts: lost) }
        case let .reply(_, claimant, c, granted):
            // Only the nodes the claim waits for have a say (a stranger's "no" is ignored).
            guard claimant == me, var p = pending[c.name], p.ts == c.ts, p.waiting[o] != nil else { return }
            if !granted {
                failLocal(c.name, ts: c.ts)
                return
            }
            p.waiting[o] = nil
            pending[c.name] = p
            if p.waiting.isEmpty { grant(c.name) }
        case let .release(_, c):
            registry.release(c, holder: o)
        case .bye:
            // A BYE ends only what this node knows of that incarnation, and only for
            // `departedMs`. (One for a neighbor by another path never gets here: `ingest`
            // drops it before it is sequenced.)
            drop(o, until: nowMs + Cluster.departedMs)
        case let .load(_, sessions, rooms):
            nodes[o]?.sessions = sessions
            nodes[o]?.roomMembers = Dictionary(rooms.prefix(Cluster.maxLoadRooms).map { ($0.room, $0.members) }, uniquingKeysWith: max)
        case let .chat(_, room, user, text):
            hub.deliverRemote(roomKey: room, user: user, text: text)
        }
    }

    // MARK: Routing

    /// Neighbors a message from `origin` (received from `from`, nil when it is ours) goes on to.
    /// A neighbor of the origin got it from the origin itself; a room message goes only towards
    /// nodes with members in the room, or towards nodes this one cannot reach otherwise.
    func targets(origin: NodeID, from: NodeID?, room: String?) -> [NodeID] {
        var out: [NodeID] = []
        let originNeighbors = origin == me ? [] : (nodes[origin]?.neighbors ?? [])
        for q in neighbors where q != from && q != origin && !originNeighbors.contains(q) {
            if let room, !(nodes[q]?.rooms.contains(room) ?? false), !isTransit(q) { continue }
            out.append(q)
        }
        return out
    }

    /// True when `q` links to a node this one has no link to: traffic may need to pass through it.
    private func isTransit(_ q: NodeID) -> Bool {
        guard let n = nodes[q] else { return true }
        return n.neighbors.contains { $0 != me && !neighbors.contains($0) }
    }

    // MARK: Output

    private func next() -> Flood {
        controlSeq += 1
        return Flood(origin: me, seq: controlSeq)
    }

    private func flood(_ msg: PeerMessage) {
        let to = targets(origin: me, from: nil, room: msg.chatRoom)
        guard !to.isEmpty else { return }
        let payload = Payload.line(msg.encoded)
        for q in to { transport?.send(payload, to: q) }
    }

    private func sendHeartbeat(nowMs: UInt64) {
        lastHeartbeatMs = nowMs
        flood(.heartbeat(next(), advertise: advertise, neighbors: neighbors.sorted()))
    }

    private func sendState() {
        lastStateMs = clock().nowMs
        stateWanted = false
        flood(.state(next(), rooms: hub.announced.sorted(), claims: registry.ownGranted()))
    }

    /// A STATE for a new link or origin: at once while the budget allows
    /// (`statesPerSecond`, burst twice that), else at the next tick it does. A stream of new
    /// origins (a joining cluster, or a hostile peer inventing them) costs a few STATEs a
    /// second, not one per origin.
    private func requestState(nowMs: UInt64) {
        guard stateBudget.take(nowMs: nowMs) else {
            stateWanted = true
            return
        }
        sendState()
    }

    private func sendLoad(nowMs: UInt64) {
        lastLoadMs = nowMs
        let rooms = hub.rooms.map { RoomCount(room: $0.key, members: $0.value.members.count) }.sorted { $0.room < $1.room }
        let msg = PeerMessage.load(Flood(origin: me, seq: 0), sessions: hub.sessions.count, rooms: rooms)
        let text = msg.encoded
        guard text != lastLoad else { return }
        lastLoad = text
        flood(.load(next(), sessions: hub.sessions.count, rooms: rooms))
    }

    // MARK: Time

    /// Called every heartbeat interval or so: heartbeats, dead nodes, claims to resend.
    public func tick(nowMs: UInt64) {
        releaseExpiredHolds(nowMs: nowMs, wallMs: clock().wallMs)
        if nowMs >= lastHeartbeatMs + heartbeatMs { sendHeartbeat(nowMs: nowMs) }
        if stateWanted { requestState(nowMs: nowMs) }
        for (id, n) in nodes where nowMs > n.lastHeardMs + peerTimeoutMs {
            drop(id, until: nil)
        }
        // A node that does not answer a claim within `claimAnswerMs`, though it is heard
        // from (a hung process, or an origin a hostile peer made up), is treated as failed:
        // the login does not wait for it, and its messages are ignored for `departedMs`.
        var silent: Set<NodeID> = []
        for p in pending.values {
            for (id, since) in p.waiting where nowMs > since + claimAnswerMs { silent.insert(id) }
        }
        for id in silent.sorted() {
            onEvent?(.unresponsive(id))
            drop(id, until: nowMs + Cluster.departedMs)
        }
        departed = departed.filter { nowMs < $0.value }
        if nowMs >= lastLoadMs + Cluster.loadEveryMs && !neighbors.isEmpty { sendLoad(nowMs: nowMs) }
        if nowMs >= lastStateMs + Cluster.stateEveryMs && !neighbors.isEmpty {
            // A safety net: a RELEASE lost with a link leaves no stale record for long.
            sendState()
            forgetIdleStreams(nowMs: nowMs)
            registry.expireClaimsInFlight(olderThanMs: nowMs > Cluster.stateEveryMs ? nowMs - Cluster.stateEveryMs : 0)
        }
        for (name, p) in pending where nowMs >= p.sentMs + Cluster.claimResendMs {
            pending[name]?.sentMs = nowMs
            flood(.claim(next(), NameClaim(name: name, ts: p.ts)))
        }
    }

    /// A node died, was cut off, or left: its names are free, its rooms no longer need
    /// traffic. With `until`, its messages are ignored until then (BYE, or no answer).
    private func drop(_ id: NodeID, until: UInt64?) {
        nodes[id] = nil
        if let until { departed[id] = until }
        registry.drop(id)
        for (name, var p) in pending where p.waiting.removeValue(forKey: id) != nil {
            pending[name] = p
            if p.waiting.isEmpty { grant(name) }
        }
    }

    /// Chat streams that carried nothing for `streamIdleMs` (rooms that emptied, or a
    /// transit node's view of traffic it only forwarded) are forgotten: their next message
    /// starts them afresh.
    private func forgetIdleStreams(nowMs: UInt64) {
        forgetUnusedRoomSequences(nowMs: nowMs)
        guard nowMs > streamIdleMs else { return }
        let cutoff = nowMs - streamIdleMs
        for (id, n) in nodes where n.chat.values.contains(where: { $0.lastMs < cutoff && $0.held.isEmpty }) {
            nodes[id]!.chat = n.chat.filter { $0.value.lastMs >= cutoff || !$0.value.held.isEmpty }
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

    /// How many per-origin streams this node tracks (status; tests check it stays bounded).
    public var streamCount: Int { nodes.values.reduce(0) { $0 + 1 + $1.chat.count } }
    /// Rooms this node numbers its own chat in (one per room with local members).
    public var roomSequenceCount: Int { roomSeqs.count }

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
                                     sentMs: nowMs, startedUs: preciseNowUs())
        flood(.claim(next(), NameClaim(name: name, ts: ts)))
        return .pending
    }

    /// A node became known while claims wait (it joined, or a partition is healing): it may
    /// hold one of the names, granted while it was out of reach, so each claim waits for its
    /// answer too, and is sent again now rather than at the next resend.
    private func askNewNode(_ id: NodeID, nowMs: UInt64) {
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

    // MARK: Rooms and messages, for the Hub

    func roomChanged(_ roomKey: String, joined: Bool) {
        if !joined {
            // Streams of a room we no longer follow start afresh if it comes back. Ours keeps
            // its numbering until every node has forgotten it (`forgetUnusedRoomSequences`):
            // a copy of an old message still on its way must not pass for a new one.
            for id in nodes.keys { nodes[id]!.chat[roomKey] = nil }
        }
        flood(.room(next(), joined: joined, room: roomKey))
    }

    func relay(roomKey: String, user: String, text: UnsafeRawBufferPointer) {
        guard !neighbors.isEmpty else { return }  // a lone node: no work on the hot path
        roomSeqs[roomKey, default: 0] += 1
        let seq = roomSeqs[roomKey]!
        let to = targets(origin: me, from: nil, room: roomKey)
        guard !to.isEmpty else { return }
        // `MSG <me> <seq> <room> <user> ` in a reused buffer: no String per message.
        relayHeader.removeAll(keepingCapacity: true)
        relayHeader.append(contentsOf: Cluster.msgVerb)
        relayHeader.append(contentsOf: meBytes)
        relayHeader.append(0x20)
        appendDecimal(seq, to: &relayHeader)
        relayHeader.append(0x20)
        relayHeader.append(contentsOf: roomKey.utf8)
        relayHeader.append(0x20)
        relayHeader.append(contentsOf: user.utf8)
        relayHeader.append(0x20)
        let payload = Payload.line(prefix: relayHeader, text: text)
        for q in to { transport?.send(payload, to: q) }
    }

    private static let msgVerb: [UInt8] = Array("MSG ".utf8)
    private lazy var meBytes: [UInt8] = Array(me.text.utf8)
    private var relayHeader: [UInt8] = []

    /// The node is stopping: tell every node at once rather than let them time out.
    public func leave() {
        flood(.bye(next()))
    }
}
