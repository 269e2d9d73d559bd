import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// `tcp_chat`: a chat node or a terminal client (README.md).
@main
struct TCPChat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcp_chat",
        abstract: "A federated chat relay for the tcp_chat protocol, and its terminal client.",
        subcommands: [ServerCommand.self, ClientCommand.self, StartCommand.self, StatusCommand.self, BenchCommand.self]
    )

    /// Options may also come from the environment (EnvironmentOptions).
    static func main() {
        let args = EnvironmentOptions.apply(to: Array(CommandLine.arguments.dropFirst()), environment: processEnvironment())
        main(args)
    }
}

func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return out
}

/// `tcp_chat start client ...`: the original README's spelling of `tcp_chat client`.
struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Same as the bare subcommand (`start client` = `client`), as the original README writes it.",
        subcommands: [ClientCommand.self, ServerCommand.self]
    )
}
