import ChatCore

/// What `tcp_chat client` was asked to do.
public struct ClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var chatID: String
    /// `--framing auto|line|raw` (`--line`, `--raw`): which handshake to send (HandshakePlan).
    public var mode: HandshakePlan.Mode
    /// `--tls`: TLS to the node, its certificate verified (`--tls-ca` or the system store) and
    /// its host name checked.
    public var tls = false
    /// `--tls-ca FILE`: the CA the node's certificate must chain to.
    public var tlsCA: String?
    /// Bound on resolving and connecting (all addresses together).
    public var connectTimeoutMs = 5_000
    /// Bound on the wait for `200`/`403`/`400`.
    public var replyTimeoutMs = 10_000
    /// After a bare `200` to a line handshake: how long its `\n` may take. A node sends
    /// `200\n` in one write, so it comes at once; this also keeps us from leaving the
    /// original server before it has put the connection in its room (leaving earlier can
    /// leave our name taken there for good).
    public var lineReplyGraceMs = 300
    /// Bound on the original server closing the connection we leave after the fallback.
    public var fallbackCloseMs = 2_000
    /// After the fallback, the original server may not have freed our name yet when the
    /// bare handshake arrives: a `403` is retried this often, for this long.
    public var nameRetryEveryMs = 100
    public var nameRetryForMs = 1_500

    public init(host: String, port: Int, username: String, chatID: String, mode: HandshakePlan.Mode = .auto) {
        self.host = host
        self.port = port
        self.username = username
        self.chatID = chatID
        self.mode = mode
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

    /// The first message (SPEC.md §3.1): `user_room\n` for a line attempt, `user_room` bare
    /// (as the original client sends it) for the fallback and `--raw`.
    public func handshake(_ attempt: HandshakePlan.Attempt) -> [UInt8] {
        Array("\(username)_\(chatID)".utf8) + (attempt == .line ? [UInt8(ascii: "\n")] : [])
    }
}
