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
        discussion: "Prints `listening on HOST:PORT` on stdout once it accepts connections. SIGINT/SIGTERM stop it cleanly."
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
    @Option(help: "Connections accepted at once; 0 means no limit but the fd limit.")
    var maxConnections = Limits().maxConnections
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
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "tcp_chat")
        let node: Node
        do {
            node = try Node(NodeConfiguration(host: address, port: port, limits: limits, logger: logger))
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        print("listening on \(node.listeningAddress)")
        fflush(nil)  // tests and scripts wait for this line
        let code = node.run()
        if code != 0 { throw ExitCode(code) }
    }
}
