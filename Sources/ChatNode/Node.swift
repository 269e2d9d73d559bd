import CUV
import ChatCore
import Logging

/// A chat node: one libuv loop, its listener, its connections, the Hub that decides the
/// chat and the Cluster that decides what crosses to other nodes. `init` binds; `run()`
/// serves until SIGINT/SIGTERM, then stops cleanly: clients get `/exit`, peers get BYE,
/// every handle is closed, and the loop closes (docs/operations.md, "Taking a node down").
public final class Node {
    let loop = EventLoop()
    let hub: Hub
    let cluster: Cluster
    let logger: Logger
    let peerQueueBytes: Int
    let secret: [UInt8]?
    /// TLS contexts for new connections (docs/tls.md); replaced on SIGHUP, nil for plaintext.
    private(set) var tls: TLSContexts?
    let tlsClientsRequired: Bool
    /// `--web-origins`: which pages may open WebSocket sessions.
    let webOrigins: OriginPolicy
    /// The chat page's responses, built once at start (nothing is read at request time).
    let webPage: WebPage.Responses
    /// Logged-in WebSocket sessions (they count in `hub.sessions` too).
    var webSessions = 0
    private var listener: Listener?
    private(set) var connections: [ObjectIdentifier: Connection] = [:]
    /// Established peer links, one per neighbor node.
    private(set) var links: [NodeID: PeerLink] = [:]
    /// Every peer connection, in handshake or open: the tick checks their silence without
    /// walking every client connection.
    var peerConnections: [ObjectIdentifier: PeerLink] = [:]
    /// Addresses kept dialed, by address text.
    private(set) var dialers: [String: PeerDialer] = [:]
    private var nextID: UInt64 = 0
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private let cron: UnsafeMutablePointer<uv_timer_t>
    private var cronClosed = false
    private var stopping = false
    private var stopDeadlineMs: UInt64 = 0
    private var lastAcceptErrorMs: UInt64 = 0
    /// Accept failures since the last "cannot accept" log line (the total is `loop.stats.acceptErrors`).
    private var acceptErrorsSinceLog = 0
    /// How much of the loop's stalled time (`Liveness.stalledMs`) the links were excused already.
    private var excusedMs: UInt64 = 0
    private var lastForgetMs: UInt64 = 0
    private var rng = SystemRandomNumberGenerator()
    /// Dialers whose address is being resolved (cancelled at stop).
    private var resolutions: [PeerDialer] = []
    /// Connections not yet logged in or authenticated (docs/security.md): bounded by
    /// `pendingBudget`, so strangers cannot hold more than that many.
    private var unauthenticated: Set<ObjectIdentifier> = []
    /// Connections accepted at once, and how many of them may be unauthenticated.
    let connectionBudget: Int
    let pendingBudget: Int
    /// Refusals and defences are logged through this, a few lines a second per kind.
    private var logLimiter = LogLimiter()
    let startedMs: UInt64
    /// Prometheus metrics, when `--metrics` is given.
    private(set) var metrics: NodeMetrics?
    private var metricsListener: Listener?

    /// Period of the housekeeping timer while something waits (`Tunables.cronMs`).
    static let cronMs = Tunables.cronMs
    /// … and while nothing does: about `Tunables.idleTickMs`, a whole fraction of the
    /// heartbeat period (its HB slots, `Cluster.periodicHeartbeatDue`), at least `cronMs`.
    static func idleTickMs(heartbeatMs: UInt64) -> UInt64 {
        let slots = max(1, (heartbeatMs + Tunables.idleTickMs - 1) / Tunables.idleTickMs)
        return max(cronMs, heartbeatMs / slots)
    }
    /// When the housekeeping timer is due (loop time), and whether it was armed for `cronMs`.
    private var cronDueMs: UInt64 = 0
    private var cronPrompt = false
    /// Some dialer waits for its next attempt, resolves, or has a link in its handshake: set
    /// when an address is learned or a link closes, recomputed by each tick.
    private var dialsWaiting = true

    /// The address the node really listens on (`127.0.0.1:40123`).
    public var listeningAddress: String { listener?.boundAddress ?? "" }
    public var nodeID: NodeID { cluster.me }

    public init(_ config: NodeConfiguration) throws {
        cuv_ignore_sigpipe()
        cuv_unblock_stop_signals()
        hub = Hub(limits: config.limits)
        logger = config.logger
        peerQueueBytes = config.peerQueueBytes
        secret = config.clusterSecret
        tlsClientsRequired = config.tlsClientsRequired
        webOrigins = config.webOrigins
        webPage = WebPage.responses()
        (connectionBudget, pendingBudget) = config.limits.connectionBudget(fdLimit: Int(cuv_fd_limit()))
        if let files = config.tls { tls = try TLSContexts(files) }
        cron = .allocate(capacity: 1)
        uv_timer_init(loop.raw, cron)
        startedMs = loop.nowMs
        let bound: Listener
        do {
            bound = try Listener(loop: loop, host: config.host, port: config.port) { _ in }
        } catch {
            Node.abandonInit(loop: loop, cron: cron, listener: nil)
            throw error
        }
        var g = SystemRandomNumberGenerator()
        cluster = Cluster(me: NodeID.random(using: &g), advertise: config.advertise ?? bound.boundAddress, hub: hub,
                          heartbeatMs: config.heartbeatMs, peerTimeoutMs: config.peerTimeoutMs, tickMs: Node.cronMs,
                          idleTickMs: Node.idleTickMs(heartbeatMs: config.heartbeatMs))
        listener = bound
        hub.cluster = cluster
        cluster.transport = self
        let loop = self.loop
        cluster.clock = { (loop.nowMs, wallClockMs()) }
        cluster.preciseNowUs = { uv_hrtime() / 1000 }
        cluster.onEvent = { [unowned self] event in self.clusterEvent(event) }
        listener?.onConnection = { [unowned self] status in self.accept(status) }
        cron.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        armCron()
        loop.beforePoll = { [unowned self] in self.promptTickIfWanted() }
        for peer in config.peers { dialers[peer] = PeerDialer(address: peer) }
        if let m = config.metricsAddress {
            let metrics = NodeMetrics()
            self.metrics = metrics
            cluster.onClaimSettled = { us in metrics.claimLatency.record(Double(us) / 1_000_000) }
            do {
                guard let at = HostPort(m, allowPortZero: true) else { throw Listener.Failure.resolve(m, "not HOST:PORT") }
                metricsListener = try Listener(loop: loop, host: at.host, port: at.port) { [unowned self] status in
                    self.acceptMetrics(status)
                }
            } catch {
                Node.abandonInit(loop: loop, cron: cron, listener: listener)
                throw error
            }
        }
        for sig in [SIGINT, SIGTERM] + (tls != nil ? [SIGHUP] : []) {
            let h = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop.raw, h)
            h.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(h, onSignal, sig)
            signals.append(h)
        }
    }

    /// Undoes a failed `init`: closes what it opened and runs the loop until every handle is closed.
    private static func abandonInit(loop: EventLoop, cron: UnsafeMutablePointer<uv_timer_t>, listener: Listener?) {
        listener?.close()
        uv_close(cuv_handle(cron), onTimerClosed)
        loop.closeOwnHandles()
        _ = loop.finish()
    }

    /// Serves until stopped. Returns the process exit code.
    public func run() -> Int32 {
        logger.notice("node started", metadata: [
            "listen": "\(listeningAddress)", "node": "\(cluster.me)", "advertise": "\(cluster.advertise)",
            "peers": "\(dialers.keys.sorted().joined(separator: ","))", "metrics": "\(metricsAddress ?? "-")"])
        if let tls {
            logger.notice("TLS on", metadata: [
                "certificate": "\(tls.files.certificate)", "ca": "\(tls.files.ca ?? "system trust store")",
                "clients": "\(tlsClientsRequired ? "TLS required" : "TLS or plaintext")",
                "expires_in_days": "\(tls.secondsUntilExpiry / 86400)"])
        }
        if secret == nil {
            logger.warning("no cluster secret: any host that can reach this port can join the cluster (see --cluster-secret-file)")
        }
        tick()
        loop.run()
        let rc = loop.finish()
        if rc != 0 {
            logger.error("event loop did not close cleanly", metadata: ["error": "\(uvError(rc))"])
            return 1
        }
        logger.notice("node stopped")
        return 0
    }

    // MARK: Connections

    private func accept(_ status: Int32) {
        guard status == 0 else {
            // EMFILE and friends: libuv's spare-fd trick already shed the pending
            // connection, so nothing spins; log at most once a second.
            acceptErrorsSinceLog += 1
            loop.stats.acceptErrors += 1
            let now = loop.nowMs
            if now - lastAcceptErrorMs >= 1000 || lastAcceptErrorMs == 0 {
                logger.warning("cannot accept connections", metadata: [
                    "error": "\(uvError(status))", "count": "\(acceptErrorsSinceLog)"])
                lastAcceptErrorMs = now
                acceptErrorsSinceLog = 0
            }
            return
        }
        guard let server = listener?.tcp else { return }
        let conn = Connection(loop: loop, maxQueueBytes: hub.limits.maxQueueBytes)
        conn.backlogCap = hub.limits.maxTotalQueueBytes
        nextID += 1
        let client = ClientHandler(node: self, conn: conn, id: nextID)
        conn.handler = client
        if let tls { conn.detectTLS(tls) }
        guard conn.accept(from: server) else { return }
        loop.stats.accepted += 1
        if connections.count >= connectionBudget {
            refusal("connection limit reached", level: .warning, metadata: ["limit": "\(connectionBudget)"])
            conn.close(reason: "connection limit")
            return
        }
        if unauthenticated.count >= pendingBudget {
            loop.stats.pendingLimitRefusals += 1
            refusal("too many connections waiting to log in or authenticate", level: .warning,
                    metadata: ["limit": "\(pendingBudget)"])
            conn.close(reason: "pending connection limit")
            return
        }
        connections[ObjectIdentifier(conn)] = conn
        unauthenticated.insert(ObjectIdentifier(conn))
        client.start()
    }

    /// The address metrics are served on, when `--metrics` is given.
    public var metricsAddress: String? { metricsListener?.boundAddress }

    private func acceptMetrics(_ status: Int32) {
        guard status == 0, let server = metricsListener?.tcp else { return }
        let conn = Connection(loop: loop, maxQueueBytes: Tunables.metricsQueueBytes)
        let h = MetricsHandler(node: self, conn: conn)
        conn.handler = h
        if let tls { conn.detectTLS(tls) }
        guard conn.accept(from: server) else { return }
        connections[ObjectIdentifier(conn)] = conn
        h.start()
    }

    func forget(_ c: Connection) {
        connections[ObjectIdentifier(c)] = nil
        unauthenticated.remove(ObjectIdentifier(c))
        if stopping && connections.isEmpty { closeCron() }
    }

    /// The connection logged in (a client) or proved itself (a peer): it no longer counts
    /// against the budget of unauthenticated connections.
    func authenticated(_ c: Connection) {
        unauthenticated.remove(ObjectIdentifier(c))
    }

    /// Connections that have not logged in or authenticated yet.
    var unauthenticatedCount: Int { unauthenticated.count }

    /// Logs a refusal or a defence at most a few times a second per kind (`LogLimiter`),
    /// with how many of its kind were not logged since the last line.
    func refusal(_ message: String, level: Logger.Level = .notice, metadata: Logger.Metadata = [:]) {
        guard let suppressed = logLimiter.admit(message, nowMs: loop.nowMs) else { return }
        var m = metadata
        if suppressed > 0 { m["suppressed"] = "\(suppressed)" }
        logger.log(level: level, "\(message)", metadata: m)
    }

    private func clusterEvent(_ event: ClusterEvent) {
        switch event {
        case .tooManyNodes(let id):
            loop.stats.originsRefused += 1
            refusal("ignoring a new origin: the cluster is at its node limit", level: .warning,
                    metadata: ["origin": "\(id)", "limit": "\(Limits.maxClusterNodes)"])
        case .unresponsive(let id):
            refusal("node did not answer a claim within the peer timeout; treating it as failed", level: .warning,
                    metadata: ["node": "\(id)"])
        case .byeIgnored(let origin, let via):
            refusal("ignoring a BYE for a neighbor that did not come on its own link", level: .warning,
                    metadata: ["origin": "\(origin)", "via": "\(via)"])
        case .declaredDead(let id, let linkLost):
            refusal("node declared dead", metadata: [
                "dead": "\(id)",
                "reason": "\(linkLost ? "its link closed and nothing came from it since" : "silent for the peer timeout")",
                "timeout_ms": "\(linkLost ? Tunables.suspectHeartbeats * cluster.heartbeatMs : cluster.peerTimeoutMs(for: id))"])
        }
    }

    // MARK: Peer links

    /// 32 random hex digits, fresh for each handshake.
    func newNonce() -> String {
        Hex.encode(UInt64.random(in: .min ... .max, using: &rng)) + Hex.encode(UInt64.random(in: .min ... .max, using: &rng))
    }

    /// `binding`: the link's TLS exporter value (empty on plain TCP), which every proof covers
    /// (docs/cluster-protocol.md §3).
    func newHandshake(binding: [UInt8] = []) -> PeerHandshake {
        PeerHandshake(me: cluster.me, advertise: cluster.advertise, secret: secret, nonce: newNonce(), binding: binding)
    }

    /// A handshake completed. Two links to one node (both dialed at once) end as one: the
    /// one dialed by the node with the smaller id stays, on both ends (docs/cluster-protocol.md §3). Two
    /// links dialed by the same node are not a race but a redial: the dialer gave up the old
    /// one (its peer timed out, or the close was lost), so the new one stays, on both ends.
    func linkEstablished(_ link: PeerLink, remote: NodeID, advertise: String) {
        link.dialer?.node = remote
        link.dialer?.linkUp()
        if let existing = links[remote], existing !== link {
            let iDialSmaller = cluster.me < remote
            let newIsPreferred = (link.dialer != nil) == iDialSmaller
            let oldIsPreferred = (existing.dialer != nil) == iDialSmaller
            let redial = (link.dialer != nil) == (existing.dialer != nil)
            if !redial && (oldIsPreferred || !newIsPreferred) {
                link.send(.error(reason: "duplicate link"))
                link.conn.closeAfterFlush(reason: "duplicate link", graceMs: Tunables.refusalGraceMs)
                return
            }
            links[remote] = link
            if redial {
                logger.notice("peer link replaced by a newer one dialed by the same node", metadata: [
                    "peer": "\(remote)", "old": "\(existing.address)", "new": "\(link.address)"])
            }
            existing.send(.error(reason: "duplicate link"))
            existing.conn.closeAfterFlush(reason: "duplicate link", graceMs: Tunables.refusalGraceMs)
            cluster.linkUp(remote, advertise: advertise, nowMs: loop.nowMs)
            return
        }
        links[remote] = link
        logger.notice("peer link up", metadata: [
            "peer": "\(remote)", "address": "\(link.address)", "advertise": "\(advertise)",
            "direction": "\(link.dialer == nil ? "in" : "out")", "tls": "\(link.conn.tls?.summary ?? "off")"])
        cluster.linkUp(remote, advertise: advertise, nowMs: loop.nowMs)
    }

    func linkClosed(_ link: PeerLink, remote: NodeID) {
        guard links[remote] === link else { return }
        links[remote] = nil
        dialsWaiting = true
        logger.notice("peer link down", metadata: ["peer": "\(remote)", "reason": "\(link.conn.closeReason)"])
        cluster.linkDown(remote, nowMs: loop.nowMs)
    }

    /// Resolves (off the loop) and dials a peer address.
    private func dial(_ d: PeerDialer) {
        d.attempting(nowMs: loop.nowMs)
        guard let at = HostPort(d.address) else { return }
        d.resolving = true
        let r = Resolution.start(loop: loop, host: at.host, port: at.port) { [unowned self] address, error in
            d.resolving = false
            d.resolution = nil  // the lookup holds this closure, which holds the dialer: break the cycle
            resolutions.removeAll { $0 === d }
            guard !stopping else { return }
            guard let address else {
                logger.info("cannot resolve peer address; will retry", metadata: ["peer": "\(d.address)", "error": "\(error)"])
                return
            }
            connect(d, to: address, host: at.host)
        }
        if d.resolving { d.resolution = r; resolutions.append(d) }
    }

    private func connect(_ d: PeerDialer, to address: [UInt8], host: String) {
        let conn = Connection(loop: loop, maxQueueBytes: peerQueueBytes)
        // With certificates, every dialed link is TLS and the peer's chain must verify.
        if let tls, let session = TLSSession(context: tls.dialer, accepting: false, hostName: host) { conn.useTLS(session) }
        let link = PeerLink(node: self, conn: conn, dialer: d)
        conn.handler = link
        d.link = link
        connections[ObjectIdentifier(conn)] = conn
        conn.connect(to: address)
    }

    // MARK: Housekeeping

    fileprivate func tick() {
        guard !stopping else {
            if loop.nowMs >= stopDeadlineMs { forceClose() }
            return
        }
        let now = loop.nowMs
        cluster.tick(nowMs: now, dueMs: cronDueMs)
        // A stall of this loop (`Liveness`) is not the peers' silence.
        let stalled = cluster.liveness.stalledMs - excusedMs
        excusedMs = cluster.liveness.stalledMs
        if stalled > 0 { for link in peerConnections.values { link.excuse(stalled) } }
        // Links still in their handshake have the handshake deadline (PeerLink); a slow
        // acceptor on a loaded host is not cut at the peer timeout.
        for link in Array(peerConnections.values) where link.conn.state == .open && link.established {
            if now > link.lastHeardMs + cluster.peerTimeoutMs(for: link.remote) {
                logger.notice("peer link silent too long", metadata: ["peer": "\(link.remote?.text ?? link.address)"])
                link.conn.close(reason: "peer timeout")
            }
        }
        if now >= lastForgetMs + 1000 {
            // Once a second is plenty for a 60 s expiry (every dialer is looked at).
            lastForgetMs = now
            forgetGoneAddresses(nowMs: now)
        }
        dialDue(nowMs: now)
        dialsWaiting = dialers.values.contains { d in
            if d.resolving { return true }
            if let link = d.link { return !link.established }
            // Idle: its node is linked by another address, or it is our own address.
            return d.address != cluster.advertise && !(d.node.map { links[$0] != nil } ?? false)
        }
    }

    /// Dials the addresses that are due, a few at a time (docs/scaling.md): at most
    /// `Tunables.maxDialsInFlight` dials are resolving, connecting or in their handshake at
    /// once, and a learned address of a node with a smaller id than ours is left to that node
    /// to dial (one dial per pair, not two that end in a duplicate: the link the smaller id
    /// dials is the one both keep, docs/cluster-protocol.md §3), unless it has not come for
    /// `Tunables.dialDeferMs`.
    private func dialDue(nowMs now: UInt64) {
        var inFlight = dialers.values.count { $0.resolving || ($0.link.map { !$0.established } ?? false) }
        guard inFlight < Tunables.maxDialsInFlight else { return }
        for d in dialers.values where d.link == nil && !d.resolving && now >= d.nextAttemptMs {
            if let n = d.node, links[n] != nil { d.retryLater(nowMs: now, ms: Tunables.dialDuplicateRetryMs); continue }
            if d.address == cluster.advertise { continue }
            if d.learned, let n = d.node, n < cluster.me, now < d.learnedMs + Tunables.dialDeferMs { continue }
            dial(d)
            inFlight += 1
            if inFlight >= Tunables.maxDialsInFlight { return }
        }
    }

    /// The housekeeping timer fires on wall-clock multiples of its period, on every node
    /// alike, so heartbeats go out in their slots (`Cluster.periodicHeartbeatDue`) and a node's
    /// peers' heartbeats reach it in batches (docs/scaling.md). The period is `cronMs` while
    /// something waits on a deadline (the cluster's `needsPromptTick`, a dial, the stop), else
    /// the idle tick: an idle node wakes for it twice a second, not ten times.
    fileprivate func armCron() {
        guard !cronClosed else { return }
        cronPrompt = wantsPromptTick
        let period = cronPrompt ? Node.cronMs : cluster.idleTickMs
        let delay = period - wallClockMs() % period
        cronDueMs = loop.nowMs + delay
        uv_timer_start(cron, onCron, delay, 0)
    }

    private var wantsPromptTick: Bool { stopping || dialsWaiting || cluster.needsPromptTick }

    /// After every turn of the loop: something started waiting on a deadline (a login's
    /// claim, a closed link's suspicion, …) while the timer was armed for the idle tick.
    fileprivate func promptTickIfWanted() {
        guard !cronPrompt, !cronClosed, wantsPromptTick else { return }
        uv_timer_stop(cron)
        armCron()
    }

    // MARK: Certificate rotation

    /// SIGHUP: reads the certificate, key and CA again into new contexts for new connections;
    /// open sessions keep theirs. Files that do not load (unreadable, a key that does not
    /// match) keep the old contexts, and the log says why (docs/tls.md, "Rotation").
    fileprivate func reloadTLS() {
        guard let old = tls else { return }
        do {
            let fresh = try TLSContexts(old.files)
            tls = fresh
            loop.stats.tlsReloads += 1
            logger.notice("TLS certificates reloaded", metadata: [
                "certificate": "\(fresh.files.certificate)", "expires_in_days": "\(fresh.secondsUntilExpiry / 86400)"])
        } catch {
            loop.stats.tlsReloadFailures += 1
            logger.error("TLS reload failed; keeping the previous certificates", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Stopping

    fileprivate func stop(signal: Int32) {
        guard !stopping else { return }
        stopping = true
        stopDeadlineMs = loop.nowMs + Tunables.stopGraceMs
        logger.notice("stopping", metadata: ["signal": "\(signal == SIGINT ? "SIGINT" : "SIGTERM")",
                                              "connections": "\(connections.count)"])
        listener?.close()
        listener = nil
        metricsListener?.close()
        metricsListener = nil
        for h in signals { uv_close(cuv_handle(h), onSignalClosed) }
        signals.removeAll()
        cluster.leave()
        for d in resolutions { d.resolution?.cancel() }
        for c in connections.values {
            if let client = c.handler as? ClientHandler { client.sayGoodbye() } else if let web = c.handler as? WebHandler {
                web.sayGoodbye()
            } else {
                c.closeAfterFlush(reason: "node stopping", graceMs: Tunables.stoppingGraceMs)
            }
        }
        if connections.isEmpty { closeCron() }
    }

    private func forceClose() {
        for c in Array(connections.values) { c.close(reason: "node stopping") }
        closeCron()
    }

    /// The last handles: once no connection is left, nothing needs flushing or ticking.
    private func closeCron() {
        guard !cronClosed else { return }
        cronClosed = true
        uv_close(cuv_handle(cron), onTimerClosed)
        loop.closeOwnHandles()
    }
}

extension Node: ClusterTransport {
    public func send(_ line: Payload, to neighbor: NodeID) {
        links[neighbor]?.conn.send(line, length: line.count)
    }

    /// Keeps every node's address dialed while that node is not linked (the housekeeping
    /// tick skips addresses whose node is linked), so links come back after any failure.
    /// Learned addresses are bounded (`Limits.maxClusterNodes`) and forgotten once their
    /// node has been gone for `Limits.learnedAddressTtlMs` (`forgetGoneAddresses`).
    public func learned(node: NodeID, address: String) {
        loop.assertOnLoop()
        guard !stopping, address != cluster.advertise, HostPort(address) != nil else { return }
        if let d = dialers[address] {
            d.node = node
            d.goneSinceMs = nil
            return
        }
        guard dialers.values.count(where: { $0.learned }) < Limits.maxClusterNodes else {
            refusal("not dialing a learned address: at the limit of learned addresses", level: .warning,
                    metadata: ["address": "\(address)", "limit": "\(Limits.maxClusterNodes)"])
            return
        }
        let d = PeerDialer(address: address, node: node, learned: true, nowMs: loop.nowMs)
        dialsWaiting = true
        // Linked now: the first dial waits until the link is gone.
        if links[node] != nil { d.retryLater(nowMs: loop.nowMs, ms: Tunables.dialDuplicateRetryMs) }
        dialers[address] = d
    }
}

extension Node {
    /// Forgets learned addresses whose node is neither linked nor known alive for
    /// `Limits.learnedAddressTtlMs` (a node that left, or an address a peer made up).
    /// `--peer` addresses are kept for ever.
    fileprivate func forgetGoneAddresses(nowMs: UInt64) {
        for (address, d) in dialers where d.learned && d.link == nil && !d.resolving {
            let alive = d.node.map { links[$0] != nil || cluster.nodes[$0] != nil } ?? false
            if alive { d.goneSinceMs = nil; continue }
            guard let since = d.goneSinceMs else { d.goneSinceMs = nowMs; continue }
            if nowMs >= since + Limits.learnedAddressTtlMs {
                dialers[address] = nil
                metrics?.forgetAddress(address)
            }
        }
    }
}

private func onSignal(_ h: UnsafeMutablePointer<uv_signal_t>?, _ signum: Int32) {
    let node = Unmanaged<Node>.fromOpaque(h!.pointee.data).takeUnretainedValue()
    if signum == SIGHUP { return node.reloadTLS() }
    node.stop(signal: signum)
}

private func onSignalClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_signal_t.self, capacity: 1) { $0.deallocate() }
}

private func onCron(_ t: UnsafeMutablePointer<uv_timer_t>?) {
    let node = Unmanaged<Node>.fromOpaque(t!.pointee.data).takeUnretainedValue()
    node.tick()
    node.armCron()
}

private func onTimerClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_timer_t.self, capacity: 1) { $0.deallocate() }
}
