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
    /// `--max-connections`, 0 (none): connections a node accepts at once; past it new ones are closed.
    public var maxConnections: Int = 0
    /// `--max-total-queue-bytes`, 268435456: all clients' unsent bytes together; past it, a
    /// client with a backlog is dropped at its next flush (many slow consumers at once).
    public var maxTotalQueueBytes: Int = 256 * 1024 * 1024

    /// Usernames are 1…32 characters (SPEC.md §3.1).
    public static let maxUsernameLength = 32
    /// Chat ids are 1…64 characters (SPEC.md §3.1).
    public static let maxChatIDLength = 64
    /// A cluster secret must hold at least this many bytes (after trailing whitespace is
    /// trimmed). Whoever can make a node or a status client compute HMAC(secret, text it
    /// knows) can test guesses offline, as fast as it can hash: only a long random secret
    /// resists that (docs/operations.md, "The cluster secret").
    public static let minClusterSecretBytes = 16

    public init() {}
}
