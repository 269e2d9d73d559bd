/// Every limit of a node, in one place (SPEC.md §2). Each field names its flag and default.
public struct Limits: Sendable, Equatable {
    /// `--max-message-bytes`, 4096: longest message text, not counting `\r\n` / `\n`.
    public var maxMessageBytes: Int = 4096
    /// `--handshake-timeout`, 10 s: time a new connection has to send a complete handshake.
    public var handshakeTimeoutMs: UInt64 = 10_000
    /// `--rate-limit`, 50: messages per second per client, burst 2×; 0 turns it off.
    public var rateLimit: Int = 50
    /// `--max-queue-bytes`, 262144: a client's outgoing queue; past it the client is dropped.
    public var maxQueueBytes: Int = 262_144
    /// `--silence-ms`, 100: a pause that ends an unterminated message (SPEC.md §3.2).
    public var silenceMs: UInt64 = 100
    /// `--max-handshake-bytes`, 256: bytes a connection may send before its handshake is complete.
    public var maxHandshakeBytes: Int = 256
    /// `--max-connections`, 0 (derived): connections a node accepts at once; past it new ones
    /// are closed. 0 means the fd limit less a reserve for peer links and listeners
    /// (`Limits.connectionBudget`).
    public var maxConnections: Int = 0
    /// `--max-pending-connections`, 0 (derived): connections not yet logged in or
    /// authenticated (client handshakes, peer handshakes, status requests, browsers before their
    /// WebSocket login); past it new
    /// connections are closed at once. 0 means half of the connection budget.
    public var maxPendingConnections: Int = 0
    /// `--max-total-queue-bytes`, 268435456: all clients' unsent bytes together; past it, a
    /// client with a backlog is dropped at its next flush (many slow consumers at once).
    public var maxTotalQueueBytes: Int = 256 * 1024 * 1024

    /// Bytes a TLS connection may send before its TLS handshake completes (a ClientHello, or a
    /// peer's certificate chain): past it the connection is closed like a bad handshake.
    /// Its time counts against `--handshake-timeout`; after it, `--max-handshake-bytes` applies
    /// to the decrypted client handshake as on a plaintext connection (docs/tls.md).
    public static let maxTLSHandshakeBytes = 32 * 1024

    /// Usernames are 1…32 characters (SPEC.md §3.1).
    public static let maxUsernameLength = 32
    /// Chat ids are 1…64 characters (SPEC.md §3.1).
    public static let maxChatIDLength = 64
    /// An HTTP request head (request line and header fields) is at most 8 KiB; past it the
    /// answer is 431 and the connection closes. The request line itself must also fit in
    /// `maxHandshakeBytes`: it is the connection's first line (docs/protocol.md, "Web clients").
    public static let maxHTTPHeadBytes = 8192
    /// Header fields in one HTTP request head, at most.
    public static let maxHTTPHeaderFields = 64
    /// A cluster secret must hold at least this many bytes (after trailing whitespace is
    /// trimmed). Whoever can make a node or a status client compute HMAC(secret, text it
    /// knows) can test guesses offline, as fast as it can hash: only a long random secret
    /// resists that (docs/operations.md, "The cluster secret").
    public static let minClusterSecretBytes = 16

    /// Largest session or member count a peer may report (`LOAD`): more than any process
    /// can hold open, and small enough that a sum over every node cannot overflow.
    public static let maxWireCount = 100_000_000
    /// Most nodes in one cluster: a node tracks at most this many others, keeps at most
    /// this many learned addresses dialed, and refuses a HB listing more neighbors.
    public static let maxClusterNodes = 512
    /// Lines of one kind of refusal (bad handshake, refused peer, …) logged per second.
    public static let refusalLogsPerSecond = 20
    /// Learned peer addresses whose node has been gone this long stop being dialed.
    public static let learnedAddressTtlMs: UInt64 = 60_000
    /// Longest line a connection may send before it has authenticated as a peer or a
    /// status caller (a HELLO with the longest address is ~470 bytes; AUTH is 69).
    public static let maxPreAuthLineBytes = 2048

    public init() {}

    /// The connections a node accepts at once, and how many of them may be unauthenticated,
    /// given the process's fd limit: the fd limit less a reserve (16, plus an eighth of the
    /// limit up to one fd per possible cluster node) when `--max-connections` is 0.
    public func connectionBudget(fdLimit: Int) -> (total: Int, pending: Int) {
        let reserve = 16 + min(fdLimit / 8, Limits.maxClusterNodes)
        let total = maxConnections > 0 ? maxConnections : max(fdLimit - reserve, 16)
        let pending = maxPendingConnections > 0 ? maxPendingConnections : max(total / 2, 8)
        return (total, pending)
    }
}

extension Int {
    /// `self + other`, clamped to `Int.max`/`Int.min` instead of trapping on overflow.
    public func saturatingAdd(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
