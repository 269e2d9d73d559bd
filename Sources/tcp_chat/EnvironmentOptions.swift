/// Server options from the environment, for containers and systemd env files: `--foo-bar`
/// comes from `TCP_CHAT_FOO_BAR` unless given on the command line (flags win). The
/// repeatable `--peer` comes from `TCP_CHAT_PEER` as a comma-separated list.
enum EnvironmentOptions {
    /// Every `tcp_chat server` option, by long name (a test checks this against `--help`).
    static let serverOptions = [
        "address", "port", "max-message-bytes", "handshake-timeout", "rate-limit", "max-queue-bytes",
        "silence-ms", "max-handshake-bytes", "max-connections", "max-pending-connections", "max-total-queue-bytes", "peer", "advertise", "cluster-secret-file",
        "heartbeat-ms", "peer-timeout-ms", "peer-queue-bytes", "metrics", "tls-cert", "tls-key", "tls-ca", "tls-clients",
        "web-origins", "log-level",
    ]
    /// Spellings on the command line that count as giving the option.
    static let aliases: [String: [String]] = ["address": ["-a", "--adress"], "port": ["-p"]]

    static func variable(for option: String) -> String {
        "TCP_CHAT_" + option.uppercased().replacingOccurrences("-", "_")
    }

    /// `args` (without the program name) with the environment's options added to a `server` command.
    static func apply(to args: [String], environment: [String: String]) -> [String] {
        let serverAt: Int
        if args.first == "server" { serverAt = 0 } else if args.count > 1 && args[0] == "start" && args[1] == "server" {
            serverAt = 1
        } else { return args }
        let given = args[(serverAt + 1)...]
        var extra: [String] = []
        for option in serverOptions {
            let spellings = ["--" + option] + (aliases[option] ?? [])
            let onCommandLine = given.contains { arg in
                spellings.contains { arg == $0 || arg.hasPrefix($0 + "=") || ($0.count == 2 && arg.hasPrefix($0) && arg.count > 2) }
            }
            guard !onCommandLine, let value = environment[variable(for: option)], !value.isEmpty else { continue }
            let values = option == "peer" ? value.split(separator: ",").map { String($0).trimmed } : [value]
            for v in values where !v.isEmpty { extra += ["--" + option, v] }
        }
        return args + extra
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
    var trimmed: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
}
