/// docs/operations.md, "Taking a node down": SIGINT / SIGTERM stop a node cleanly: every client gets `/exit`, framed for
/// its session, and the process exits 0 within a couple of seconds, its handles all closed.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite("Shutdown")
struct ShutdownTests {
    /// What a node that closed everything cleanly never logs.
    static let leakSigns = ["did not close cleanly", "leak", "ebusy", "uv_loop_close", "fatal error"]

    static func expectCleanLog(_ node: NodeProcess) {
        let log = node.stderr.lowercased()
        for sign in leakSigns {
            #expect(!log.contains(sign), "node stderr mentions \"\(sign)\":\n\(node.stderrTail)")
        }
    }

    @Test("a signal tells every client /exit, then the node exits 0", arguments: [SIGTERM, SIGINT])
    func signalSaysExitToEveryClientAndExitsZero(_ signal: Int32) throws {
        let node = try NodeProcess()
        let line = try LineClient.join("alice", "room", port: node.port)
        let raw = try LineClient.joinRaw("bob", "room", port: node.port)
        let other = try LineClient.join("carol", "elsewhere", port: node.port)
        // Everyone is in: carol's echo comes after the node has taken all three logins.
        try other.send("ready\n")
        #expect(try other.readLine() == "carol - ready")

        node.send(signal: signal)
        let started = ContinuousClock.now
        #expect(try line.readLine() == "/exit")
        #expect(try line.expectClosed().isEmpty, "alice got more after /exit")
        try raw.expectBytes("/exit")
        #expect(try raw.expectClosed().isEmpty, "bob got more after /exit")
        #expect(try other.readLine() == "/exit")
        #expect(try other.expectClosed().isEmpty, "carol got more after /exit")

        let status = try node.exitStatus(within: .seconds(5) - (ContinuousClock.now - started))
        #expect(status == 0, "exit status after signal \(signal)")
        Self.expectCleanLog(node)
    }

    @Test func clientsThatDoNotCloseDoNotHoldUpTheExit() throws {
        // The clients read /exit but keep their sockets open: the node still exits in time.
        let node = try NodeProcess()
        let alice = try LineClient.join("alice", "room", port: node.port)
        let bob = try LineClient.joinRaw("bob", "room", port: node.port)
        let pending = try LineClient.connect(port: node.port, label: "no-handshake")
        node.send(signal: SIGTERM)
        #expect(try node.exitStatus(within: .seconds(5)) == 0)
        #expect(try alice.readLine() == "/exit")
        try bob.expectBytes("/exit")
        try alice.expectClosed()
        try bob.expectClosed()
        try pending.expectClosed()
        Self.expectCleanLog(node)
    }

    @Test func idleNodeExitsZeroOnSigterm() throws {
        let node = try NodeProcess()
        #expect(try node.stop(signal: SIGTERM, timeout: .seconds(5)) == 0)
        Self.expectCleanLog(node)
    }

    @Test func nodeThatSawChatExitsZeroOnSigint() throws {
        let node = try NodeProcess()
        do {
            let alice = try LineClient.join("alice", "room", port: node.port)
            let bob = try LineClient.join("bob", "room", port: node.port)
            try alice.send("hi\n")
            #expect(try bob.readLine() == "alice - hi")
            bob.close()
            try alice.send("/exit\n")
            try alice.expectClosed()
        }
        #expect(try node.stop(signal: SIGINT, timeout: .seconds(5)) == 0)
        Self.expectCleanLog(node)
    }
}
