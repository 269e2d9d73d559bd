/// Texts the node itself sends. After the handshake they start with `* `, which no username
/// can, so no one can mistake them for a member's message (SPEC.md §3.3).
public enum Notice {
    public static let accepted = "200"
    public static let malformed = "400"
    public static let nameTaken = "403"
    public static let exit = "/exit"

    public static func tooLong(_ limit: Int) -> String { "* message too long (limit \(limit) bytes); not sent" }
    public static let invalidUTF8 = "* message is not valid UTF-8; not sent"
    public static let nameLost = "* your name was granted to an earlier login elsewhere in the cluster; disconnecting"
    /// To a plaintext handshake on a node started with `--tls-clients required` (docs/tls.md).
    public static let tlsRequired = "* this node accepts clients over TLS only (tcp_chat client --tls); disconnecting"
    public static let controlCharacter = "* message holds control characters; not sent"
    public static func rateLimited(_ rate: Int) -> String {
        "* you are sending too fast (limit \(rate) messages per second); your messages are delayed"
    }
}
