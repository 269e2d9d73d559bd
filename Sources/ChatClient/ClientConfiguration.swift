import ChatCore

/// What `tcp_chat client` was asked to do.
public struct ClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var chatID: String
    /// `--line`: send the handshake with `\n`, so our nodes frame every message with `\n`.
    public var lineFraming: Bool
    /// `--tls`: TLS to the node, its certificate verified (`--tls-ca` or the system store) and
    /// its host name checked.
    public var tls = false
    /// `--tls-ca FILE`: the CA the node's certificate must chain to.
    public var tlsCA: String?
    /// Bound on resolving and connecting (all addresses together).
    public var connectTimeoutMs = 5_000
    /// Bound on the wait for `200`/`403`/`400`.
    public var replyTimeoutMs = 10_000

    public init(host: String, port: Int, username: String, chatID: String, lineFraming: Bool) {
        self.host = host
        self.port = port
        self.username = username
        self.chatID = chatID
        self.lineFraming = lineFraming
    }

    /// `host:port` for messages, with an IPv6 literal in brackets (`[::1]:8888`).
    public var address: String {
        let h = Sanitizer.displayText(Array(host.utf8))
        return h.contains(":") ? "[\(h)]:\(port)" : "\(h):\(port)"
    }

    /// Why the configuration cannot work, checked before touching the network, or nil.
    public func problem() -> String? {
        if ChatName(username, maxLength: Limits.maxUsernameLength) == nil {
            return "Invalid username \"\(Sanitizer.displayText(Array(username.utf8)))\": "
                + "use 1 to \(Limits.maxUsernameLength) characters of A-Z a-z 0-9 /."
        }
        if ChatName(chatID, maxLength: Limits.maxChatIDLength) == nil {
            return "Invalid chat id \"\(Sanitizer.displayText(Array(chatID.utf8)))\": "
                + "use 1 to \(Limits.maxChatIDLength) characters of A-Z a-z 0-9 /."
        }
        if !(1...65535).contains(port) {
            return "Invalid port \(port): use 1 to 65535."
        }
        return nil
    }

    /// The first message (SPEC.md §3.1). Bare by default, like the original client, so the
    /// original server (which takes the whole first read as the handshake) accepts it.
    public var handshake: [UInt8] {
        Array("\(username)_\(chatID)".utf8) + (lineFraming ? [UInt8(ascii: "\n")] : [])
    }
}
