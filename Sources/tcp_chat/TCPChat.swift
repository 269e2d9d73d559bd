import ArgumentParser

/// `tcp_chat`: a chat node or a terminal client (SPEC.md §2).
@main
struct TCPChat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcp_chat",
        abstract: "A federated chat relay for the tcp_chat protocol, and its terminal client.",
        subcommands: [ServerCommand.self, ClientCommand.self, StartCommand.self]
    )
}

/// `tcp_chat start client ...`: the original README's spelling of `tcp_chat client`.
struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Same as the bare subcommand (`start client` = `client`), as the original README writes it.",
        subcommands: [ClientCommand.self, ServerCommand.self]
    )
}
