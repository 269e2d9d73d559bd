import ArgumentParser
import ChatClient

/// `tcp_chat client`: connect to a node (or the original server) and chat.
struct ClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Connect to a chat node and chat in one room."
    )

    @OptionGroup var node: NodeAddressOptions
    @Option(name: .shortAndLong, help: "Your name in the chat: A-Z a-z 0-9 /, at most 32.")
    var username: String
    @Option(name: [.short, .customLong("chat")], help: "Room to join (created if new): A-Z a-z 0-9 /, at most 64.")
    var chatID: String
    @Flag(help: "Line framing only: fail rather than fall back to the original protocol (tcp_chat nodes only).")
    var line = false
    @Flag(help: "The original protocol only: bare handshake, one read is one message (for the original server; forgeable, see docs/protocol.md).")
    var raw = false
    @OptionGroup var tlsOptions: NodeTLSOptions

    func validate() throws {
        if line && raw { throw ValidationError("--line and --raw exclude each other") }
    }

    func run() throws {
        let mode: HandshakePlan.Mode = line ? .line : raw ? .raw : .auto
        var config = ClientConfiguration(host: node.address, port: node.port, username: username, chatID: chatID, mode: mode)
        config.tls = tlsOptions.tls || tlsOptions.tlsCa != nil
        config.tlsCA = tlsOptions.tlsCa
        let code = TerminalClient.run(config)
        if code != 0 { throw ExitCode(code) }
    }
}
