import ChatCore

/// Keeps one address of the cluster dialed (a `--peer`, or a node learned by gossip),
/// redialing with capped exponential backoff whatever closed the link (docs/cluster-protocol.md §8).
final class PeerDialer {
    let address: String
    /// The node this address reached last time, once known.
    var node: NodeID?
    var link: PeerLink?
    /// Its address is being looked up.
    var resolving = false
    var resolution: Resolution?
    private(set) var nextAttemptMs: UInt64 = 0
    private var backoffMs = PeerDialer.minBackoffMs
    static let minBackoffMs = Tunables.dialMinBackoffMs
    static let maxBackoffMs = Tunables.dialMaxBackoffMs

    /// Learned from gossip (not a `--peer`): bounded, and forgotten when its node is gone.
    let learned: Bool
    /// Since when its node has been neither linked nor alive (learned addresses only).
    var goneSinceMs: UInt64?

    /// When it was learned: a node with a smaller id dials us first (`Node.dialDue`).
    let learnedMs: UInt64

    init(address: String, node: NodeID? = nil, learned: Bool = false, nowMs: UInt64 = 0) {
        self.address = address
        self.node = node
        self.learned = learned
        learnedMs = nowMs
    }

    func attempting(nowMs: UInt64) {
        nextAttemptMs = nowMs + backoffMs
        backoffMs = min(backoffMs * 2, PeerDialer.maxBackoffMs)
    }

    func linkUp() { backoffMs = PeerDialer.minBackoffMs }

    func linkEnded(nowMs: UInt64) {
        link = nil
        nextAttemptMs = max(nextAttemptMs, nowMs + PeerDialer.minBackoffMs)
    }

    func retryLater(nowMs: UInt64, ms: UInt64) { nextAttemptMs = nowMs + ms }
}
