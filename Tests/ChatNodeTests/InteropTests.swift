/// The original Python client (`cn_tcp_server` 0.0.2) against our node: the strongest
/// check that the raw framing really is what the original speaks (docs/protocol.md §2).
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite("Interop with the original client")
struct InteropTests {
    /// The unpacked sdist: `TCP_CHAT_SEED_DIR` (CI sets it, see `.ci/seed.sh`), else
    /// `/tmp/seed/cn_tcp_server-0.0.2`. Missing: a failure under CI, a skip elsewhere.
    static func seedDirectory() throws -> String? {
        let env = ProcessInfo.processInfo.environment
        let dir = env["TCP_CHAT_SEED_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp/seed/cn_tcp_server-0.0.2"
        let python = findPython()
        if FileManager.default.fileExists(atPath: dir + "/tcp_chat/__main__.py"), python != nil { return dir }
        let why = python == nil
            ? "python3 not found on PATH"
            : "the original client is not at \(dir) (set TCP_CHAT_SEED_DIR; `.ci/seed.sh DIR` fetches it)"
        if env["CI"].map({ !$0.isEmpty }) ?? false {
            Issue.record("interop test cannot run under CI: \(why)")
            return nil
        }
        print("InteropTests: skipped: \(why)")
        try Test.cancel("\(why)")
    }

    static func findPython() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let p = "\(dir)/python3"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @Test func originalClientAndLineClientChatBothWays() throws {
        guard let seed = try Self.seedDirectory() else { return }
        try withNode { node in
            let alice = try OriginalClient(seed: seed, port: node.port, user: "alice", room: "room")
            defer { alice.kill() }
            guard alice.output.waitFor("Connected!", timeout: .seconds(10)) else {
                throw E2EError("the original client did not print Connected!; its output: \(alice.output.text)")
            }
            let bob = try LineClient.join("bob", "room", port: node.port)

            try alice.type("hello from alice\n")
            #expect(try bob.readLine() == "alice - hello from alice")

            try bob.send("hi alice\n")
            #expect(try bob.readLine() == "bob - hi alice")
            #expect(alice.output.waitFor("bob - hi alice", timeout: .seconds(5)),
                    "the original client printed: \(alice.output.text)")

            alice.endInput()
            #expect(alice.waitForExit(timeout: .seconds(5)), "the original client did not end after its stdin closed")
            // Its connection is gone from the node too: the name is free again.
            let again = try retry(for: .seconds(3), "alice can log in again after the original client left") {
                () -> LineClient? in
                let c = try LineClient.connect(port: node.port, label: "alice#2")
                try c.send("alice_room\n")
                let reply = try c.readLine()
                return reply == "200" ? c : nil
            }
            again.close()
        }
    }

    @Test func originalClientIsToldTheNameIsTaken() throws {
        guard let seed = try Self.seedDirectory() else { return }
        try withNode { node in
            let holder = try LineClient.join("Alice", "room", port: node.port)
            let late = try OriginalClient(seed: seed, port: node.port, user: "alice", room: "other")
            defer { late.kill() }
            #expect(late.output.waitFor("The user with such name already connect", timeout: .seconds(10)),
                    "the original client printed: \(late.output.text)")
            #expect(late.waitForExit(timeout: .seconds(5)), "the original client did not exit after 403")
            #expect(!late.output.text.contains("Connected!"))
            holder.close()
        }
    }
}

/// `python3 -u -m tcp_chat client ...` from the original package, run in its directory,
/// stdin a pipe, stdout and stderr captured.
final class OriginalClient {
    let child: ChildProcess
    let output: OutputPipe
    private var stdinWriteEnd: Int32

    init(seed: String, port: Int, user: String, room: String) throws {
        _ = ignoreSIGPIPE
        guard let python = InteropTests.findPython() else { throw E2EError("python3 not found") }
        output = try OutputPipe()
        let input = try PipePair()
        defer { close(input.readEnd) }
        child = try ChildProcess(
            executable: python,
            arguments: ["-u", "-m", "tcp_chat", "client", "-a", "127.0.0.1", "-p", "\(port)", "-u", user, "-c", room],
            directory: seed, stdin: input.readEnd, stdout: output.childEnd, stderr: output.childEnd)
        output.closeWriteEnd()
        stdinWriteEnd = input.writeEnd
    }

    /// Writes to its stdin: what a user types (its shell reads a line every 0.2 s or so).
    func type(_ text: String) throws {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(stdinWriteEnd, $0.baseAddress!, $0.count) }
        guard n == bytes.count else { throw E2EError("writing to the original client's stdin failed: \(errnoText())") }
    }

    /// Closes its stdin: `input()` raises EOFError and the client shuts down.
    func endInput() {
        if stdinWriteEnd >= 0 { close(stdinWriteEnd); stdinWriteEnd = -1 }
    }

    func waitForExit(timeout: Duration) -> Bool { child.waitForExit(timeout: timeout) }

    func kill() { child.killAndReap() }

    deinit {
        endInput()
        child.killAndReap()
    }
}
