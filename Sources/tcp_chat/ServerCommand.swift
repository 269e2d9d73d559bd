import ArgumentParser
import ChatCore
import ChatNode
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `tcp_chat server`: run a chat node (SPEC.md §2).
struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run a chat node.",
        discussion: """
            Prints `listening on HOST:PORT` on stdout once it accepts connections. SIGINT/SIGTERM stop it cleanly. \
            Every option can also come from the environment: --foo-bar from TCP_CHAT_FOO_BAR (--peer from \
            TCP_CHAT_PEER, comma-separated); the command line wins.
            """
    )

    @Option(name: [.short, .customLong("address"), .customLong("adress")], help: "Address to listen on (name, IPv4 or IPv6).")
    var address = "localhost"
    @Option(name: .shortAndLong, help: "Port to listen on; 0 picks a free one.")
    var port = 8888
    @Option(help: "Longest message text in bytes, not counting the line ending.")
    var maxMessageBytes = Limits().maxMessageBytes
    @Option(help: "Seconds a new connection has to send its handshake.")
    var handshakeTimeout = Double(Limits().handshakeTimeoutMs) / 1000
    @Option(help: "Messages per second per client (burst twice that); 0 turns the limit off.")
    var rateLimit = Limits().rateLimit
    @Option(help: "A client's outgoing queue in bytes; past it the client is dropped.")
    var maxQueueBytes = Limits().maxQueueBytes
    @Option(help: "Milliseconds of silence that end a message sent without a newline.")
    var silenceMs = Int(Limits().silenceMs)
    @Option(help: "Bytes a connection may send before its handshake is complete.")
    var maxHandshakeBytes = Limits().maxHandshakeBytes
    @Option(help: "Connections accepted at once; 0 derives it from the fd limit (the limit less a reserve for peers).")
    var maxConnections = Limits().maxConnections
    @Option(help: "Connections not yet logged in or authenticated; 0 means half of the connection budget.")
    var maxPendingConnections = Limits().maxPendingConnections
    @Option(help: "All clients' unsent bytes together; past it, clients with a backlog are dropped.")
    var maxTotalQueueBytes = Limits().maxTotalQueueBytes
    @Option(name: .customLong("peer"), help: ArgumentHelp("Another node's address (the one its clients use) to join; repeatable.", valueName: "HOST:PORT"))
    var peers: [String] = []
    @Option(help: ArgumentHelp("The address other nodes dial to reach this one (default: the listen address).", valueName: "HOST:PORT"))
    var advertise: String?
    @Option(help: ArgumentHelp("File holding the shared cluster secret (also TCP_CHAT_CLUSTER_SECRET_FILE).", valueName: "FILE"))
    var clusterSecretFile: String?
    @Option(help: "Milliseconds between heartbeats to peers.")
    var heartbeatMs = 1000
    @Option(help: "Milliseconds of silence after which a peer node counts as dead.")
    var peerTimeoutMs = 3000
    @Option(help: "A peer link's outgoing queue in bytes; past it the link is dropped and redialed.")
    var peerQueueBytes = 16 * 1024 * 1024
    @Option(help: ArgumentHelp("Serve Prometheus metrics on GET /metrics (and GET /healthz) at this address.", valueName: "HOST:PORT"))
    var metrics: String?
    @Option(help: ArgumentHelp("TLS certificate chain (PEM, the node's certificate first): turns TLS on, on the same port (docs/tls.md).", valueName: "FILE"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("Private key of --tls-cert (PEM).", valueName: "FILE"))
    var tlsKey: String?
    @Option(help: ArgumentHelp("CA certificates (PEM) that peers' certificates must chain to (default: the system trust store).", valueName: "FILE"))
    var tlsCa: String?
    @Option(help: ArgumentHelp("optional: plaintext clients are still accepted; required: clients must use TLS.", valueName: "optional|required"))
    var tlsClients = "optional"
    @Option(help: ArgumentHelp("Origins (scheme://host[:port], comma-separated; * for any) besides the node's own host whose pages may open WebSocket sessions.", valueName: "LIST"))
    var webOrigins: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "notice"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
        guard maxMessageBytes >= 1 else { throw ValidationError("--max-message-bytes must be at least 1") }
        guard handshakeTimeout > 0 else { throw ValidationError("--handshake-timeout must be positive") }
        guard rateLimit >= 0 else { throw ValidationError("--rate-limit must be 0 (off) or more") }
        guard maxQueueBytes >= 1024 else { throw ValidationError("--max-queue-bytes must be at least 1024") }
        guard silenceMs >= 1 else { throw ValidationError("--silence-ms must be at least 1") }
        guard maxHandshakeBytes >= 100 else { throw ValidationError("--max-handshake-bytes must be at least 100") }
        guard maxConnections >= 0 else { throw ValidationError("--max-connections must be 0 or more") }
        guard maxPendingConnections >= 0 else { throw ValidationError("--max-pending-connections must be 0 or more") }
        guard maxTotalQueueBytes >= 65536 else { throw ValidationError("--max-total-queue-bytes must be at least 65536") }
        for p in peers + [advertise].compactMap({ $0 }) where !isHostPort(p) {
            throw ValidationError("'\(p)' is not HOST:PORT (IPv6 as [ADDR]:PORT)")
        }
        if let m = metrics, !isHostPort(m, allowPortZero: true) {
            throw ValidationError("--metrics '\(m)' is not HOST:PORT (port 0 picks a free one)")
        }
        if let o = webOrigins {
            for entry in o.split(separator: ",").map({ String($0).trimmed }) where !entry.isEmpty && entry != "*" {
                guard OriginPolicy.isOrigin(entry) else {
                    throw ValidationError("--web-origins: '\(entry)' is not an origin (http://HOST[:PORT] or https://HOST[:PORT]) or *")
                }
            }
        }
        guard heartbeatMs >= 10 else { throw ValidationError("--heartbeat-ms must be at least 10") }
        guard peerTimeoutMs > heartbeatMs else { throw ValidationError("--peer-timeout-ms must exceed --heartbeat-ms") }
        guard peerQueueBytes >= 65536 else { throw ValidationError("--peer-queue-bytes must be at least 65536") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsCa != nil && tlsCert == nil { throw ValidationError("--tls-ca needs --tls-cert and --tls-key") }
        guard tlsClients == "optional" || tlsClients == "required" else {
            throw ValidationError("--tls-clients is optional or required, not '\(tlsClients)'")
        }
        if tlsClients == "required" && tlsCert == nil { throw ValidationError("--tls-clients required needs --tls-cert and --tls-key") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() throws {
        var limits = Limits()
        limits.maxMessageBytes = maxMessageBytes
        limits.handshakeTimeoutMs = UInt64((handshakeTimeout * 1000).rounded())
        limits.rateLimit = rateLimit
        limits.maxQueueBytes = maxQueueBytes
        limits.silenceMs = UInt64(silenceMs)
        limits.maxHandshakeBytes = maxHandshakeBytes
        limits.maxConnections = maxConnections
        limits.maxPendingConnections = maxPendingConnections
        limits.maxTotalQueueBytes = maxTotalQueueBytes
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "tcp_chat")
        var config = NodeConfiguration(host: address, port: port, limits: limits, logger: logger)
        config.peers = peers
        config.advertise = advertise
        config.heartbeatMs = UInt64(heartbeatMs)
        config.peerTimeoutMs = UInt64(peerTimeoutMs)
        config.peerQueueBytes = peerQueueBytes
        config.metricsAddress = metrics
        if let tlsCert, let tlsKey {
            config.tls = TLSFiles(certificate: tlsCert, key: tlsKey, ca: tlsCa)
            config.tlsClientsRequired = tlsClients == "required"
        }
        if let o = webOrigins { config.webOrigins = OriginPolicy(parsing: o) }
        if let file = clusterSecretFile {
            config.clusterSecret = try readSecret(file)
        }
        let node: Node
        do {
            node = try Node(config)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        print("listening on \(node.listeningAddress)")
        if let m = node.metricsAddress { print("metrics on \(m)") }
        fflush(nil)  // tests and scripts wait for this line
        let code = node.run()
        if code != 0 { throw ExitCode(code) }
    }
}

/// HOST:PORT with a numeric port; an IPv6 host in brackets.
func isHostPort(_ s: String, allowPortZero: Bool = false) -> Bool {
    guard let colon = s.lastIndex(of: ":"), colon > s.startIndex, let port = Int(s[s.index(after: colon)...]),
          ((allowPortZero ? 0 : 1)...65535).contains(port) else { return false }
    let host = s[..<colon]
    return !host.contains(":") || (host.hasPrefix("[") && host.hasSuffix("]"))
}

/// The secret is the file's content without trailing whitespace (SPEC.md §4.1), at least
/// `Limits.minClusterSecretBytes` long. Used by `server` and `status` alike: a bad file is
/// one `Error: …` line on stderr and exit status 64 (no usage text: the options were fine).
func readSecret(_ path: String) throws -> [UInt8] {
    do {
        return try readSecretFile(path)
    } catch let e as ValidationError {
        let line = Array("Error: \(e.message)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        throw ExitCode.validationFailure
    }
}

private func readSecretFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else {
        throw ValidationError("cannot read cluster secret file \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
    }
    while let last = bytes.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { bytes.removeLast() }
    guard !bytes.isEmpty else { throw ValidationError("cluster secret file \(path) is empty") }
    guard bytes.count >= Limits.minClusterSecretBytes else {
        throw ValidationError("cluster secret file \(path) holds \(bytes.count) bytes; a secret needs at least "
            + "\(Limits.minClusterSecretBytes) random bytes (make one with `openssl rand -hex 32 > FILE` and copy it to every node)")
    }
    return bytes
}
