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
    /// An HTTP request head (request line and header fields) is at most 8 KiB; past it the
    /// answer is 431 and the connection closes. The request line itself must also fit in
    /// `maxHandshakeBytes`: it is the connection's first line (docs/protocol.md, "Web clients").
    public static let maxHTTPHeadBytes = 8192
    /// Header fields in one HTTP request head, at most.
    public static let maxHTTPHeaderFields = 64

    public init() {}
}
