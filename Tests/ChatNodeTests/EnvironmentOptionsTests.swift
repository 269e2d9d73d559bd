import Testing
@testable import tcp_chat
import TestSupport

@Suite struct EnvironmentOptionsTests {
    @Test func everyServerOptionHasAnEnvironmentVariable() {
        let help = ServerCommand.helpMessage(columns: 200)
        var longs = Set<String>()
        // Option lines start with a dash; the discussion's prose does not.
        for line in help.split(separator: "\n") where line.drop(while: { $0 == " " }).hasPrefix("-") {
            for word in line.split(whereSeparator: { $0 == " " || $0 == "," }) where word.hasPrefix("--") {
                let name = word.dropFirst(2).prefix { $0.isLetter || $0 == "-" }
                if !name.isEmpty { longs.insert(String(name)) }
            }
        }
        longs.subtract(["help", "adress"])  // --adress is the original's spelling of --address
        #expect(longs == Set(EnvironmentOptions.serverOptions), "help lists \(longs.sorted())")
    }

    @Test func environmentFillsWhatTheCommandLineLeaves() {
        let env = ["TCP_CHAT_PORT": "9000", "TCP_CHAT_RATE_LIMIT": "5", "TCP_CHAT_PEER": "a:1, b:2", "TCP_CHAT_ADDRESS": "::"]
        let args = EnvironmentOptions.apply(to: ["server", "-p", "7000"], environment: env)
        #expect(args.starts(with: ["server", "-p", "7000"]))
        let extra = Array(args.dropFirst(3))
        #expect(!extra.contains("--port"), "the flag -p wins over TCP_CHAT_PORT")
        #expect(extra.contains("--rate-limit") && extra.contains("5"))
        #expect(extra.filter { $0 == "--peer" }.count == 2 && extra.contains("a:1") && extra.contains("b:2"))
        #expect(extra.contains("--address") && extra.contains("::"))
    }

    @Test func otherCommandsAreLeftAlone() {
        let env = ["TCP_CHAT_PORT": "9000"]
        #expect(EnvironmentOptions.apply(to: ["client", "-u", "a", "-c", "b"], environment: env) == ["client", "-u", "a", "-c", "b"])
        #expect(EnvironmentOptions.apply(to: ["start", "server"], environment: env) == ["start", "server", "--port", "9000"])
    }
}
