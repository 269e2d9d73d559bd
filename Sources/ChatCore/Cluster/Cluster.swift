/// What the runtime logs (rate-limited) or counts about the cluster's defences.
public enum ClusterEvent: Equatable, Sendable {
    /// A message of a new origin was ignored: the node already tracks `Limits.maxClusterNodes`.
    case tooManyNodes(NodeID)
    /// A node that is heard from did not answer a claim within the peer timeout.
    case unresponsive(NodeID)
    /// A BYE for a neighbor came from another neighbor, not on the neighbor's own link.
    case byeIgnored(origin: NodeID, via: NodeID)
    /// A node was declared dead: silent for the peer timeout, or its direct link closed and
    /// nothing came from it by any path for `Tunables.suspectHeartbeats` heartbeats.
    case declaredDead(NodeID, linkLost: Bool)
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
        /// Its neighbor set's version, as its HBs number it; `neighborsKnown` is false until a
        /// list of that version arrived (then `neighbors` is empty and routing assumes nothing).
        public var neighborsVersion: UInt64 = 0
        /// `neighbors`, sorted (compared and intersected without hashing).
        public var neighborList: [NodeID] = []
        public var neighborsKnown = false
        /// When its direct link closed, if nothing came from it since (docs/cluster-protocol.md §5).
        var suspectSinceMs: UInt64?
        /// Its control stream, and its chat stream in each room, as seen here (`OriginStream.swift`).
        var control = OriginStream()
        var chat: [String: OriginStream] = [:]
    }

    /// When a link last came or went, here or (by a changed HB) anywhere: for
    /// `Tunables.topologySettleMs` after it a new chat stream may not start at its first message.
    private(set) var lastTopologyChangeMs: UInt64 = 0

    public internal(set) var nodes: [NodeID: RemoteNode] = [:]
    /// Nodes with a link to this one.
    public private(set) var neighbors: Set<NodeID> = []
    public internal(set) var registry: ClaimRegistry
    /// Nodes that said BYE or did not answer a claim, until when their messages are ignored
    /// (late copies of a departed node's messages; docs/cluster-protocol.md §5).
    private var departed: [NodeID: UInt64] = [:]
    /// A STATE a new origin asked for, waiting for the budget to allow it.
    private var stateWanted = false
    /// Paces the STATEs that new links and origins ask for (`Tunables.statesPerSecond`, burst 2×).
    private var stateBudget = RateLimiter(rate: Tunables.statesPerSecond, nowMs: 0)
    /// Something the runtime should log or count (bounded by the runtime's log limiter).
    public var onEvent: ((ClusterEvent) -> Void)?
    var hlc = HybridClock()
    private var controlSeq: UInt64 = 0
    var roomSeqs: [String: UInt64] = [:]
    /// Rooms of `roomSeqs` without local members, and since when (swept with the streams).
    var roomSeqsUnusedSince: [String: UInt64] = [:]
    private var lastHeartbeatMs: UInt64 = 0
    /// A link came or went: an HB is due, paced by `heartbeatBudget`.
    private var heartbeatWanted = false
    /// Paces the HBs that link changes ask for (`Tunables.triggeredHeartbeatsPerSecond`, burst
    /// 2×): a small cluster sends each at once; a forming big one a few a second, each listing
    /// every change since the last.
    private var heartbeatBudget = RateLimiter(rate: Tunables.triggeredHeartbeatsPerSecond, nowMs: 0)
    /// This node's neighbor set's version (bumped by every link change), the version its
    /// last listed HB carried, and when that was.
    private var neighborsVersion: UInt64 = 1
    private var listedVersion: UInt64 = 0
    private var lastListMs: UInt64 = 0
    /// Neighbors that may lead to nodes this one has no link to (`isTransit`), and each
    /// origin's carriers (`carriers(of:)`): recomputed after any change of links or neighbor
    /// sets (`routingChanged`), not per message.
    private var transitCache: Set<NodeID>?
    private var carriersCache: [CarrierKey: [NodeID]] = [:]
    /// False while no stream holds an early message (`releaseExpiredHolds` has nothing to do).
    var mayHoldMessages = false
    /// The node's own health: stalls of its loop are not its peers' fault (`Liveness.swift`).
    public private(set) var liveness: Liveness
    /// The runtime's tick period when idle (`Tunables.idleTickMs`): heartbeats go out in
    /// slots of this length (`periodicHeartbeatDue`).
    public let idleTickMs: UInt64
    /// Some neighbor is suspected (its link closed, nothing heard since): set by `linkDown`,
    /// recomputed by each tick's look at every node.
    private var suspicionPending = false

    /// Called with the microseconds each claim that asked the cluster took to settle (metrics).
    public var onClaimSettled: ((UInt64) -> Void)?
    /// A precise monotonic clock in microseconds, for claim latency.
    public var preciseNowUs: () -> UInt64 = { 0 }
    private var lastLoad = ""
    private var lastLoadMs: UInt64 = 0
    private var lastStateMs: UInt64 = 0
    /// Local logins' claims waiting for the cluster's answers (`Cluster+Claims.swift`).
    var pending: [String: PendingClaim] = [:]

    /// `tickMs`: the runtime's finest tick period (its housekeeping timer while something
    /// waits, `needsPromptTick`), so that a late tick shows the loop stalled (`Liveness`); 0,
    /// for simulations whose clock jumps between ticks, turns that judgement off.
    /// `idleTickMs`: its period when idle (0: the same as `tickMs`).
    public init(me: NodeID, advertise: String, hub: Hub, heartbeatMs: UInt64 = Tunables.heartbeatMs,
                peerTimeoutMs: UInt64 = Tunables.peerTimeoutMs, tickMs: UInt64 = 0, idleTickMs: UInt64 = 0) {
        liveness = Liveness(tickMs: tickMs)
        self.idleTickMs = max(idleTickMs, tickMs)
        self.me = me
        self.advertise = advertise
        self.hub = hub
        self.heartbeatMs = heartbeatMs
        self.peerTimeoutMs = peerTimeoutMs
        registry = ClaimRegistry(me: me)
    }

    /// Nodes this one believes alive, itself excluded.
    public var liveNodes: [NodeID] { Array(nodes.keys) }

    // MARK: Links

    public func linkUp(_ neighbor: NodeID, advertise addr: String, nowMs: UInt64) {
        // A link just made to it (its handshake done, proved in secret mode) says it is alive
        // now, whatever BYE came for it by another path before (a member can forge one for a
        // node it is not yet linked to: fuzz target `cluster`, 2026-12-07).
        departed[neighbor] = nil
        neighbors.insert(neighbor)
        neighborsChanged(nowMs: nowMs)
        // Remembered for redialing: if the neighbor dialed us and dies, it may come back there.
        transport?.learned(node: neighbor, address: addr)
        if nodes[neighbor] == nil {
            nodes[neighbor] = RemoteNode(advertise: addr, lastHeardMs: nowMs)
            askNewNode(neighbor, nowMs: nowMs)
        } else {
            nodes[neighbor]!.lastHeardMs = nowMs
            nodes[neighbor]!.suspectSinceMs = nil
        }
        // The topology changed, and the neighbor (and all behind it) may not know us yet.
        requestState(nowMs: nowMs)
        // The next LOAD goes out even if the counts did not change: the neighbor has none yet.
        lastLoad = ""
    }

    public func linkDown(_ neighbor: NodeID, nowMs: UInt64) {
        guard neighbors.remove(neighbor) != nil else { return }
        neighborsChanged(nowMs: nowMs)
        // Tracked past the bound only while linked (`Limits.maxClusterNodes`): unlinked, it is
        // one stranger too many, ignored like any other until the count falls.
        if nodes.count > Limits.maxClusterNodes, nodes[neighbor] != nil {
            drop(neighbor, until: nil)
            return
        }
        // Alive, it is heard from again by another path within a heartbeat or two (its own
        // HB, listing it has lost this link, makes the others forward its messages here);
        // dead (a killed process closes its links), it is not (§5, "Liveness").
        if nodes[neighbor] != nil {
            nodes[neighbor]!.suspectSinceMs = nowMs
            suspicionPending = true
        }
    }

    /// A link came or went: a new neighbor-set version, an HB soon (paced), routing anew.
    private func neighborsChanged(nowMs: UInt64) {
        neighborsVersion += 1
        routingChanged()
        lastTopologyChangeMs = nowMs
        if heartbeatBudget.take(nowMs: nowMs) { sendHeartbeat(nowMs: nowMs) } else { heartbeatWanted = true }
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
            try ingest(.decoded(msg), f, room: msg.chatRoom, raw: UnsafeRawBufferPointer(raw), from: neighbor,
                       nowMs: nowMs, wallMs: wallMs)
        }
    }

    /// One line as bytes (without `\n`), as the runtime reads it. Chat, nearly all of a
    /// cluster's traffic, is parsed straight from the bytes and delivered without building
    /// Strings for its text or the message enum (`PeerChat`); anything else, or a MSG that
    /// has to wait for an earlier one, takes the general path.
    public func receive(bytes: UnsafeRawBufferPointer, from neighbor: NodeID, nowMs: UInt64, wallMs: UInt64) throws {
        guard let c = try PeerChat.parse(bytes) else {
            // A copy of a control message already handled (it came by another path): dropped
            // on its header, before anything else of it is decoded or checked.
            if let h = PeerHeader.parse(bytes), h.flood.seq != 0, let n = nodes[h.flood.origin], n.control.seen(h.flood.seq) {
                heard(h.flood.origin, nowMs: nowMs)
                return
            }
            if let hb = try PeerHeartbeat.parse(bytes, advertise: { self.nodes[$0]?.advertise }) {
                return try ingest(.decoded(hb), hb.flood!, room: nil, raw: bytes, from: neighbor, nowMs: nowMs, wallMs: wallMs)
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { throw PeerCodecError.malformed("line is not UTF-8") }
            return try receive(line: Substring(text), from: neighbor, nowMs: nowMs, wallMs: wallMs)
        }
        guard acceptableChat(c.text) else { throw PeerCodecError.malformed("chat text refused by the text rules") }
        try ingest(.chat(c), c.flood, room: c.room, raw: bytes, from: neighbor, nowMs: nowMs, wallMs: wallMs)
    }

    /// How often chat took the byte path (tests check that it is the one used).
    struct Stats { var fastChat = 0 }
    private(set) var stats = Stats()

    /// A received message as it was read: decoded, or chat read straight from its bytes.
    enum Incoming {
        case decoded(PeerMessage)
        case chat(PeerChat)

        var isBye: Bool {
            if case .decoded(.bye) = self { return true }
            return false
        }

        /// The origin's neighbors as an HB lists them (nil for anything else, or `=`).
        var listedNeighbors: [NodeID]? {
            if case .decoded(.heartbeat(_, _, _, let list?)) = self { return list.sorted() }
            return nil
        }

        var isHeartbeat: Bool {
            if case .decoded(.heartbeat) = self { return true }
            return false
        }

        /// The message itself, built only when it has to wait for an earlier one.
        var message: PeerMessage {
            switch self {
            case .decoded(let msg): return msg
            case .chat(let c): return .chat(c.flood, room: c.room, user: c.user, text: String(decoding: c.text, as: UTF8.self))
            }
        }
    }

    /// The flooding rules for one message (docs/cluster-protocol.md §4), step by step:
    /// admission of its origin, de-duplication, forwarding, and delivery in its origin's
    /// order, holding early messages back (`Cluster+Streams.swift`).
    private func ingest(_ m: Incoming, _ f: Flood, room: String?, raw: UnsafeRawBufferPointer, from neighbor: NodeID,
                        nowMs: UInt64, wallMs: UInt64) throws {
        if f.seq == 0 {
            // Direct (seq 0): not flooded, so neither de-duplicated nor ordered. Only a REPLY,
            // and only on its origin's own link (§5, "Claims").
            guard case .decoded(.reply(_, let claimant, let c, let granted)) = m, neighbor == f.origin else {
                throw PeerCodecError.malformed("only a REPLY may be direct (seq 0), on its origin's own link")
            }
            guard let isNew = admit(f, isBye: false, from: neighbor, nowMs: nowMs) else { return }
            take(reply: c, claimant: claimant, granted: granted, from: f.origin)
            if isNew && nodes[f.origin] != nil { met(f.origin, nowMs: nowMs) }
            return
        }
        guard let isNew = admit(f, isBye: m.isBye, from: neighbor, nowMs: nowMs) else { return }
        // A copy that came by another path: links are FIFO, so copies are all a flood costs.
        guard var stream = unseenStream(f, room: room, nowMs: nowMs) else { return }
        forward(raw, origin: f.origin, room: room, from: neighbor, heartbeat: m.isHeartbeat, listed: m.listedNeighbors)
        let ready = order(m, f, room: room, in: &stream, nowMs: nowMs)
        try applyHeld(ready.before, nowMs: nowMs, wallMs: wallMs)
        if ready.current { try handle(m, f, nowMs: nowMs, wallMs: wallMs) }
        try applyHeld(ready.after, nowMs: nowMs, wallMs: wallMs)
        if isNew && nodes[f.origin] != nil { met(f.origin, nowMs: nowMs) }
    }

    /// A node we did not know (a join, or a partition healing): claims wait for it from now
    /// on (not for the message that made it known: a stranger's first word is no answer to
    /// a claim), and it learns our state.
    private func met(_ id: NodeID, nowMs: UInt64) {
        askNewNode(id, nowMs: nowMs)
        requestState(nowMs: nowMs)
    }

    /// Something came from `id` (by any path): it is alive.
    private func heard(_ id: NodeID, nowMs: UInt64) {
        nodes[id]?.lastHeardMs = nowMs
        nodes[id]?.suspectSinceMs = nil
    }

    /// Steps 1 and 2 of §4: whether a message of this origin is taken at all, tracking the
    /// origin (and when it was last heard). Nil: ignore it, and do not forward it; true:
    /// the message made its origin known.
    private func admit(_ f: Flood, isBye: Bool, from neighbor: NodeID, nowMs: UInt64) -> Bool? {
        if f.origin == me { return nil }
        // A neighbor says BYE on its own link. A BYE for it by another path (a member
        // forging its id, or a copy that overtook the real one) is dropped before it is
        // sequenced: held as an early message, a far-ahead seq would otherwise take the
        // neighbor's control stream when its gap is given up (docs/cluster-protocol.md §5).
        if isBye, neighbors.contains(f.origin), neighbor != f.origin {
            onEvent?(.byeIgnored(origin: f.origin, via: neighbor))
            return nil
        }
        if let until = departed[f.origin] {
            if nowMs < until { return nil }
            departed[f.origin] = nil
        }
        var isNew = false
        if nodes[f.origin] == nil {
            // Every origin costs state on every node: past the bound, strangers are ignored
            // (and not forwarded) until known nodes time out.
            guard nodes.count < Limits.maxClusterNodes else {
                onEvent?(.tooManyNodes(f.origin))
                return nil
            }
            nodes[f.origin] = RemoteNode(advertise: "", lastHeardMs: nowMs)
            routingChanged()
            isNew = true
        }
        heard(f.origin, nowMs: nowMs)
        return isNew
    }

    /// Step 4 of §4: the line, unchanged, to the neighbors the routing rule allows.
    /// An HB's own neighbor list, when it has one, is the freshest word on who got it from
    /// its origin directly.
    private func forward(_ raw: UnsafeRawBufferPointer, origin: NodeID, room: String?, from neighbor: NodeID,
                         heartbeat: Bool, listed: [NodeID]?) {
        let forwardTo = targets(origin: origin, from: neighbor, room: room, heartbeat: heartbeat, listed: listed)
        guard !forwardTo.isEmpty else { return }
        let payload = Payload.line(prefix: [], text: raw)
        for q in forwardTo { transport?.send(payload, to: q) }
    }

    /// Handles the message that arrived, in its origin's order.
    private func handle(_ m: Incoming, _ f: Flood, nowMs: UInt64, wallMs: UInt64) throws {
        switch m {
        case .decoded(let msg):
            try apply(msg, f, nowMs: nowMs, wallMs: wallMs)
        case .chat(let c):
            stats.fastChat += 1
            hub.deliverRemote(roomKey: c.room, user: c.user, text: c.text)
        }
    }

    /// Handles messages that waited in their stream, in order.
    func applyHeld(_ messages: [PeerMessage], nowMs: UInt64, wallMs: UInt64) throws {
        for m in messages { try apply(m, m.flood!, nowMs: nowMs, wallMs: wallMs) }
    }

    private func acceptableChat(_ text: String) -> Bool {
        var t = text
        return t.withUTF8 { acceptableChat(UnsafeRawBufferPointer($0)) }
    }

    private func acceptableChat(_ u: UnsafeRawBufferPointer) -> Bool {
        !u.isEmpty && u.count <= hub.limits.maxMessageBytes && TextCheck.problem(in: u) == nil
    }

    /// Handles one message in its origin's order.
    func apply(_ msg: PeerMessage, _ f: Flood, nowMs: UInt64, wallMs: UInt64) throws {
        let o = f.origin
        switch msg {
        case .hello, .auth, .error:
            break
        case let .heartbeat(_, addr, version, list):
            // A quiet cluster's HB (`=`, nothing changed): nothing to update, nothing to copy.
            if list == nil, let n = nodes[o], n.neighborsVersion == version, n.advertise == addr { break }
            guard var n = nodes[o] else { break }
            n.advertise = addr
            if let list {
                let sorted = list.sorted()
                if !n.neighborsKnown || n.neighborList != sorted {
                    topologyChanged(nowMs: nowMs)
                    n.neighbors = Set(sorted)
                    n.neighborList = sorted
                }
                n.neighborsKnown = true
            } else if n.neighborsVersion != version && n.neighborsKnown {
                // `=` for a version whose list we missed (lost with a link): unknown until the
                // origin lists it again (at its next change, or within `Tunables.neighborListEveryMs`).
                n.neighbors = []
                n.neighborList = []
                n.neighborsKnown = false
                topologyChanged(nowMs: nowMs)
            }
            n.neighborsVersion = version
            nodes[o] = n
            transport?.learned(node: o, address: addr)
        case let .state(_, rooms, claims):
            nodes[o]?.rooms = Set(rooms)
            mergeState(claims, of: o, nowMs: nowMs, wallMs: wallMs)
        case let .room(_, joined, room):
            if joined { nodes[o]?.rooms.insert(room) } else { nodes[o]?.rooms.remove(room) }
        case let .claim(_, c):
            answer(c, from: o, nowMs: nowMs, wallMs: wallMs)
        case let .reply(_, claimant, c, granted):
            take(reply: c, claimant: claimant, granted: granted, from: o)
        case let .release(_, c):
            registry.release(c, holder: o)
        case .bye:
            // A BYE ends only what this node knows of that incarnation, and only for
            // `Tunables.departedMs`. (One for a neighbor by another path never gets here:
            // `admit` drops it before it is sequenced.)
            drop(o, until: nowMs + Tunables.departedMs)
        case let .load(_, sessions, rooms):
            nodes[o]?.sessions = sessions
            nodes[o]?.roomMembers = Dictionary(rooms.prefix(Tunables.maxLoadRooms).map { ($0.room, $0.members) }, uniquingKeysWith: max)
        case let .chat(_, room, user, text):
            hub.deliverRemote(roomKey: room, user: user, text: text)
        }
    }

    // MARK: Routing

    /// Neighbors a message from `origin` (received from `from`, nil when it is ours) goes on to.
    /// A neighbor of the origin got it from the origin itself; a room message goes only towards
    /// nodes with members in the room, or towards nodes this one cannot reach otherwise.
    /// `listed`: the origin's neighbors as the message itself lists them (an HB), if it does.
    /// `heartbeat`: the message is an HB, which a neighbor of its origin forwards to q only if
    /// it is the designated forwarder (`designatedForwarder`).
    func targets(origin: NodeID, from: NodeID?, room: String?, heartbeat: Bool = false, listed: [NodeID]? = nil) -> [NodeID] {
        let base: [NodeID]
        let key = CarrierKey(origin: origin, heartbeat: heartbeat && origin != me)
        if listed == nil, let cached = carriersCache[key] {
            base = cached
        } else {
            base = carriers(of: origin, heartbeat: key.heartbeat, listed: listed)
            if listed == nil { carriersCache[key] = base }
        }
        if base.isEmpty { return base }
        var out: [NodeID] = []
        for q in base where q != from {
            if let room, !(nodes[q]?.rooms.contains(room) ?? false), !isTransit(q) { continue }
            out.append(q)
        }
        return out
    }

    struct CarrierKey: Hashable {
        let origin: NodeID
        let heartbeat: Bool
    }

    /// The neighbors that do not get `origin`'s messages from the origin itself (per the
    /// origin's latest list): all of them for this node's own. Kept per origin until routing changes (`carriersCache`):
    /// in a settled full mesh every node's list is empty and a heartbeat costs one lookup.
    private func carriers(of origin: NodeID, heartbeat: Bool, listed: [NodeID]?) -> [NodeID] {
        if origin == me { return neighbors.sorted() }
        let known = nodes[origin].map { $0.neighborsKnown ? $0.neighborList : [] } ?? []
        let originList = listed ?? known
        let originNeighbors = Set(originList)
        let designating = heartbeat && originNeighbors.contains(me)
        return neighbors.sorted().filter { q in
            guard q != origin, !originNeighbors.contains(q) else { return false }
            if designating, let d = designatedForwarder(originList, q), d != me { return false }
            return true
        }
    }

    /// An HB (liveness and gossip: one lost now and then is made good by the next) from an
    /// origin to a node it has no link to is forwarded only by the smallest id among the nodes
    /// both list as neighbors, not by every one of them: while a big cluster forms, most
    /// pairs are not linked yet and have dozens of neighbors in common, and flooding every
    /// list to each of them dozens of times was the bulk of the traffic (docs/scaling.md).
    /// Nil (everyone forwards) when q's list is not known. Both lists are sorted.
    private func designatedForwarder(_ originList: [NodeID], _ q: NodeID) -> NodeID? {
        guard let n = nodes[q], n.neighborsKnown else { return nil }
        let b = n.neighborList
        var i = 0, j = 0
        while i < originList.count && j < b.count {
            if originList[i] == b[j] { return originList[i] }
            if originList[i] < b[j] { i += 1 } else { j += 1 }
        }
        return nil
    }

    /// True when `q` links to a node this one has no link to: traffic may need to pass through it.
    /// A neighbor whose links are not known is assumed to be one. Computed for every
    /// neighbor at once after a change (`transitCache`), not per message.
    private func isTransit(_ q: NodeID) -> Bool {
        if transitCache == nil {
            transitCache = Set(neighbors.filter { q in
                guard let n = nodes[q], n.neighborsKnown else { return true }
                return n.neighbors.contains { $0 != me && !neighbors.contains($0) }
            })
        }
        return transitCache!.contains(q)
    }

    /// Links or neighbor sets changed: the routing caches are stale.
    private func routingChanged() {
        transitCache = nil
        if !carriersCache.isEmpty { carriersCache.removeAll(keepingCapacity: true) }
    }

    /// A link came or went somewhere (a changed HB list): routing anew, and new chat streams
    /// may not start at their first message for a while.
    private func topologyChanged(nowMs: UInt64) {
        lastTopologyChangeMs = nowMs
        routingChanged()
    }

    // MARK: Output

    func next() -> Flood {
        controlSeq += 1
        return Flood(origin: me, seq: controlSeq)
    }

    func flood(_ msg: PeerMessage) {
        let to = targets(origin: me, from: nil, room: msg.chatRoom)
        guard !to.isEmpty else { return }
        let payload = Payload.line(msg.encoded)
        for q in to { transport?.send(payload, to: q) }
    }

    /// The neighbor list goes out when it changed and every `Tunables.neighborListEveryMs`;
    /// other HBs say `=` (docs/cluster-protocol.md §5: a quiet cluster's HBs stay small).
    private func sendHeartbeat(nowMs: UInt64) {
        lastHeartbeatMs = nowMs
        heartbeatWanted = false
        var list: [NodeID]?
        if listedVersion != neighborsVersion || nowMs >= lastListMs + Tunables.neighborListEveryMs {
            list = neighbors.sorted()
            listedVersion = neighborsVersion
            lastListMs = nowMs
        }
        flood(.heartbeat(next(), advertise: advertise, version: neighborsVersion, neighbors: list))
    }

    func sendState() {
        lastStateMs = clock().nowMs
        stateWanted = false
        flood(.state(next(), rooms: hub.announced.sorted(), claims: registry.ownGranted()))
    }

    /// A STATE for a new link or origin: at once while the budget allows
    /// (`Tunables.statesPerSecond`, burst twice that), else at the next tick it does. A stream of new
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

    /// Called every `tickMs` while `needsPromptTick`, else every `idleTickMs` or so:
    /// heartbeats, dead nodes, claims to resend. `dueMs`: when the runtime's timer was due
    /// (by default one `tickMs` after the last tick), for `Liveness`.
    public func tick(nowMs: UInt64, dueMs: UInt64? = nil) {
        let stall = liveness.tick(nowMs: nowMs, dueMs: dueMs)
        if stall > 0 { excuse(stall) }
        releaseExpiredHolds(nowMs: nowMs, wallMs: clock().wallMs)
        if periodicHeartbeatDue(nowMs: nowMs) || (heartbeatWanted && heartbeatBudget.take(nowMs: nowMs)) {
            sendHeartbeat(nowMs: nowMs)
        }
        if stateWanted { requestState(nowMs: nowMs) }
        dropDeadNodes(nowMs: nowMs)
        dropSilentNodes(nowMs: nowMs)
        departed = departed.filter { nowMs < $0.value }
        if nowMs >= lastLoadMs + Tunables.loadEveryMs && !neighbors.isEmpty { sendLoad(nowMs: nowMs) }
        if nowMs >= lastStateMs + Tunables.stateEveryMs && !neighbors.isEmpty {
            // A safety net: a RELEASE lost with a link leaves no stale record for long.
            sendState()
            forgetIdleStreams(nowMs: nowMs)
            registry.expireClaimsInFlight(olderThanMs: nowMs > Tunables.stateEveryMs ? nowMs - Tunables.stateEveryMs : 0)
        }
        resendClaims(nowMs: nowMs)
    }

    /// Whether something waits on a deadline finer than the idle tick: a local login's claim,
    /// an early message held for its gap, an HB or STATE the budget deferred, a suspected
    /// neighbor. The runtime then ticks every `tickMs`, else every `idleTickMs`; it asks
    /// after every turn of its loop, so this is a few loads.
    public var needsPromptTick: Bool {
        heartbeatWanted || stateWanted || mayHoldMessages || suspicionPending || !pending.isEmpty
    }

    /// Whether this tick sends the periodic HB. With a runtime that ticks on wall-clock
    /// boundaries (`liveness.tickMs`), the heartbeat period is cut into slots of one idle
    /// tick (`idleTickMs`; one slot with the defaults) and each node beats once per period, at
    /// the first tick of its own slot (its id modulo the slots): an idle node wakes for its
    /// own tick and hears its peers' HBs in as many batches a period as there are slots,
    /// rather than once per peer (docs/scaling.md). A node with more than
    /// `Tunables.heartbeatFanout` neighbors beats every `heartbeatStride` periods, in one of
    /// them chosen by its id, once no link has come or gone anywhere for
    /// `Tunables.topologySettleMs`. A beat comes at least half of that after the last HB (a
    /// triggered one may have just gone) and at most that and a slot after.
    private func periodicHeartbeatDue(nowMs: UInt64) -> Bool {
        // While links come and go (a forming cluster learns addresses from HBs) every period;
        // beating more often than peers expect is always safe.
        let settled = nowMs >= lastTopologyChangeMs + Tunables.topologySettleMs
        let stride = settled ? Cluster.heartbeatStride(neighbors: neighbors.count) : 1
        let period = heartbeatMs * stride
        let slot = liveness.tickMs > 0 ? idleTickMs : 0
        guard slot > 0, heartbeatMs >= slot else { return nowMs >= lastHeartbeatMs + period }
        if nowMs >= lastHeartbeatMs + period + slot { return true }
        let slots = heartbeatMs / slot
        // A timer may fire a little before its wall-clock boundary (the loop's cached time).
        let index = (clock().wallMs + Tunables.tickEarlyMs) / slot
        // Its slot of the heartbeat period, and with a stride, its period of `stride`.
        guard index % slots == me.value % slots, (index / slots) % stride == (me.value / slots) % stride,
              index != lastBeatSlot, nowMs >= lastHeartbeatMs + period / 2 else {
            return false
        }
        lastBeatSlot = index
        return true
    }

    /// The slot (wall-clock time ÷ `idleTickMs`) of the last periodic HB.
    private var lastBeatSlot: UInt64 = .max

    /// How many heartbeat periods apart a node with `neighbors` neighbors beats: one HB to
    /// each neighbor a period up to `Tunables.heartbeatFanout` of them, every second period
    /// past that, and so on. The cluster's HBs a second then stay near
    /// N × `heartbeatFanout` / period instead of N² / period (docs/scaling.md).
    public static func heartbeatStride(neighbors: Int) -> UInt64 {
        let fanout = Tunables.heartbeatFanout
        return UInt64(max(1, (neighbors + fanout - 1) / fanout))
    }

    /// How long `id` may be silent before it is dead: the peer timeout times the stride of
    /// its heartbeats (from its neighbor list, and no less than this node's own stride: in a
    /// mesh a node's neighbors are about everyone's), stretched while this node itself lags
    /// (`Liveness`). Not from the number of nodes tracked: a member inventing origins would
    /// stretch every real node's timeout. Nil: a node whose list is unknown.
    public func peerTimeoutMs(for id: NodeID?) -> UInt64 {
        let listed = id.flatMap { nodes[$0] }.map { $0.neighborsKnown ? $0.neighborList.count : 0 } ?? 0
        return liveness.stretched(peerTimeoutMs * Cluster.heartbeatStride(neighbors: max(listed, neighbors.count)))
    }

    /// Nodes silent for their peer timeout (`peerTimeoutMs(for:)`), and neighbors whose link
    /// closed and that were not heard from by any path for `Tunables.suspectHeartbeats`
    /// heartbeats since (a killed node's links close at once; a live one is heard again
    /// through the others: its HB listing the lost link goes out at once, paced). The peer
    /// timeout stretches while this node lags (`Liveness`); both exclude its stalls.
    private func dropDeadNodes(nowMs: UInt64) {
        let known = Cluster.heartbeatStride(neighbors: neighbors.count)
        // Not stretched by the health score: a closed link and silence by every path is
        // strong evidence, and a node that was busy (not starved) gets its stall credited.
        let suspectTimeout = Tunables.suspectHeartbeats * heartbeatMs
        var dead: [(NodeID, Bool)] = []
        var suspects = false
        for (id, n) in nodes {
            let stride = n.neighborsKnown ? max(known, Cluster.heartbeatStride(neighbors: n.neighborList.count)) : known
            if nowMs > n.lastHeardMs + liveness.stretched(peerTimeoutMs * stride) {
                dead.append((id, false))
            } else if let since = n.suspectSinceMs {
                if nowMs > since + suspectTimeout { dead.append((id, true)) } else { suspects = true }
            }
        }
        suspicionPending = suspects
        for (id, linkLost) in dead {
            drop(id, until: nil)
            onEvent?(.declaredDead(id, linkLost: linkLost))
        }
    }

    /// The loop did not run for `stall` ms: no peer's silence in that time counts against it,
    /// nor against a claim waiting for its answer.
    private func excuse(_ stall: UInt64) {
        for id in nodes.keys {
            nodes[id]!.lastHeardMs += stall
            if nodes[id]!.suspectSinceMs != nil { nodes[id]!.suspectSinceMs! += stall }
        }
        for name in pending.keys {
            pending[name]!.startedMs += stall
            for id in pending[name]!.waiting.keys { pending[name]!.waiting[id]! += stall }
        }
    }

    /// A node died, was cut off, or left: its names are free, its rooms no longer need
    /// traffic. With `until`, its messages are ignored until then (BYE, or no answer).
    func drop(_ id: NodeID, until: UInt64?) {
        nodes[id] = nil
        routingChanged()
        if let until { departed[id] = until }
        registry.drop(id)
        stopAwaiting(id)
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
