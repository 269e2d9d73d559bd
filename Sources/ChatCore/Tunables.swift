/// Every tunable of a node that is not a client limit (those are `Limits`, with their flags):
/// peer-link defaults, cluster protocol timings and caps, runtime timings, endpoint caps and
/// loop buffer sizes, one line each.
/// The command line (`ServerCommand`), `NodeConfiguration` and the runtime read them from
/// here; nothing else spells these numbers (CONTRIBUTING.md, "Where things go").
public enum Tunables {
    // MARK: Peer links (defaults of their flags)

    /// `--heartbeat-ms`, 1000: how often a node heartbeats to its neighbors.
    public static let heartbeatMs: UInt64 = 1000
    /// `--heartbeat-ms` is at least this.
    public static let minHeartbeatMs: UInt64 = 10
    /// `--peer-timeout-ms`, 3000: a node silent this long is dead.
    public static let peerTimeoutMs: UInt64 = 3000
    /// `--peer-queue-bytes`, 16 MiB: a peer link's outgoing queue; past it the link is dropped and redialed.
    public static let peerQueueBytes = 16 * 1024 * 1024
    /// `--peer-queue-bytes` is at least this.
    public static let minPeerQueueBytes = 65_536
    /// Longest peer line once a link is open: a STATE line lists every name a node holds.
    public static let maxPeerLineBytes = 16 * 1024 * 1024
    /// First redial delay of a peer address after a failed attempt; doubled per failure.
    public static let dialMinBackoffMs: UInt64 = 200
    /// Longest redial delay of a peer address.
    public static let dialMaxBackoffMs: UInt64 = 2000
    /// Most dials in flight at once (resolving, connecting or in the handshake): a node that
    /// learns a whole cluster at once links to it a few nodes at a time.
    public static let maxDialsInFlight = 8
    /// A learned node with a smaller id dials this node itself; after this long without a link
    /// (it cannot reach us, say) this node dials it anyway.
    public static let dialDeferMs: UInt64 = 5000
    /// A dialer whose node is already linked (a duplicate) tries again after this long.
    public static let dialDuplicateRetryMs: UInt64 = 1000
    /// How far ahead of the local wall clock a received timestamp may move the hybrid clock.
    public static let maxClockDriftMs: UInt64 = 60_000

    // MARK: Cluster protocol (docs/cluster-protocol.md §4, §5)

    /// How long an early message waits for the ones before it in its origin's stream.
    public static let streamHoldMs: UInt64 = 500
    /// Past this many early messages in one stream, its gap is given up at once.
    public static let maxHeldPerStream = 10_000
    /// For this long after a link came or went, a new chat stream's first message may not be its earliest.
    public static let topologySettleMs: UInt64 = 2000
    /// A chat stream that carried nothing for this many peer timeouts is forgotten.
    public static let streamIdlePeerTimeouts: UInt64 = 10
    /// How often a node repeats its whole STATE; claims in flight not heard of again for this long are forgotten.
    public static let stateEveryMs: UInt64 = 10_000
    /// STATEs per second sent because a link or an origin appeared (burst twice that).
    public static let statesPerSecond = 4
    /// How often a node shares its member counts (LOAD), when they changed.
    public static let loadEveryMs: UInt64 = 2000
    /// Most rooms of one LOAD kept for status.
    public static let maxLoadRooms = 100_000
    /// How often an unanswered CLAIM is sent again (replies lost with a link).
    public static let claimResendMs: UInt64 = 1000
    /// How long the messages of a node that said BYE, or did not answer a claim, are ignored.
    public static let departedMs: UInt64 = 10_000
    /// HBs per second that link changes may ask for (burst twice that); the rest wait for the tick.
    public static let triggeredHeartbeatsPerSecond = 2
    /// An HB lists the node's neighbors when they changed, and at least this often; otherwise `=`.
    public static let neighborListEveryMs: UInt64 = 60_000
    /// Periodic HBs a node sends per heartbeat period at most: with more neighbors it beats
    /// every second period (every third past twice this, …), and its peers wait as many peer
    /// timeouts for it (`Cluster.heartbeatStride`). Up to 64 neighbors nothing changes.
    public static let heartbeatFanout = 64
    /// A neighbor whose link closed is dead if nothing came from it, by any path, for this many heartbeats.
    public static let suspectHeartbeats: UInt64 = 3
    /// Local health (`Liveness`): a late tick raises the score, up to this; timeouts stretch `1 + score` times.
    public static let maxHealthScore = 8
    /// … and this many tick periods (`cronMs`) of punctual ticks lower it by one.
    public static let healthRecoveryTicks = 10

    // MARK: Node runtime

    /// Period of the housekeeping timer (heartbeats, dead-node checks, dialing) while something
    /// waits on a deadline: a claim, an early message, a wanted HB or STATE, a suspected
    /// neighbor, a dial, the stop.
    public static let cronMs: UInt64 = 100
    /// Its period when nothing waits (at most this, a whole fraction of the heartbeat
    /// period, at least `cronMs`): an idle node wakes for its own housekeeping twice a
    /// second, and the heartbeat period has that many slots (docs/scaling.md, "Wakeups").
    /// One slot (1000) saved a little more CPU at 100 nodes but made every node beat at
    /// once, and logins that met that burst waited up to 96 ms.
    public static let idleTickMs: UInt64 = 500
    /// A tick this close before a wall-clock boundary counts as on it (a timer armed from the
    /// loop's cached time fires a little early).
    public static let tickEarlyMs: UInt64 = 5
    /// How long stopping may take before remaining connections are cut.
    public static let stopGraceMs: UInt64 = 1500
    /// `listen(2)` backlog of the node's and the metrics endpoint's sockets.
    public static let listenBacklog: Int32 = 4096
    /// How long a connection closing after its last words may take to flush them.
    public static let closeGraceMs: UInt64 = 1000
    /// … after a refusal (a bad handshake, a duplicate link, an `ERROR`).
    public static let refusalGraceMs: UInt64 = 200
    /// … when the node stops (`/exit` to every client).
    public static let stoppingGraceMs: UInt64 = 500

    // MARK: Status and metrics endpoints

    /// A `tcp_chat status` caller has this long to prove itself and be answered.
    public static let statusTimeoutMs: UInt64 = 5000
    /// Longest line a status caller may send (`AUTH <64 hex>` or `PUBLIC`).
    public static let maxStatusLineBytes = 256
    /// A metrics scrape has this long to send its request and be answered.
    public static let metricsTimeoutMs: UInt64 = 5000
    /// Largest HTTP request head a metrics scrape may send; past it the answer is 431.
    public static let maxMetricsRequestBytes = 8192
    /// A metrics connection's outgoing queue (one `/metrics` page).
    public static let metricsQueueBytes = 16 * 1024 * 1024

    // MARK: Loop buffers (read on the hot path: inlinable, so they fold to constants)

    /// The loop's one read buffer, shared by every connection.
    @inlinable public static var readBufferBytes: Int { 65_536 }
    /// The loop's TLS plaintext buffer: one decrypted chunk, or one coalesced 16 KiB record.
    @inlinable public static var tlsPlainBufferBytes: Int { 16_384 }
    /// Most buffers in one `uv_write` (one per queued payload).
    @inlinable public static var maxWriteBufs: Int { 1024 }
    /// Completed write batches the loop keeps for reuse.
    @inlinable public static var maxFreeWriteBatches: Int { 256 }
}
