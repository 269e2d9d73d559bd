/// The node under test: the real `tcp_chat server` binary in a child process.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A running `tcp_chat server -a ADDRESS -p 0 ...`.
///
/// `init` returns once the node has printed `listening on HOST:PORT` (bounded wait), so the
/// port is known and connections are accepted. stderr goes to a temp file, shown in
/// failure messages. The process never outlives its `NodeProcess`: `deinit` kills it.
final class NodeProcess {
    let child: ChildProcess
    var pid: Int32 { child.pid }
    /// The port the node really listens on.
    let port: Int
    /// The address clients connect to (`127.0.0.1`, `::1`).
    let host: String
    let stderrPath: String
    private let stdout: OutputPipe

    /// Starts the node with `flags` after `server -a address -p 0`. With `fdLimit`, it runs
    /// under `/bin/sh -c 'ulimit -n N && exec BIN server ...'` (the shell execs, so `pid`
    /// is the node's).
    /// `environment`: the node's whole environment (default: the test runner's).
    init(_ flags: [String] = [], address: String = "127.0.0.1", fdLimit: Int? = nil,
         startTimeout: Duration = .seconds(10), environment: [String: String]? = nil) throws {
        _ = ignoreSIGPIPE
        let binary = try NodeBinary.path()
        host = address
        let args = ["server", "-a", address, "-p", "0"] + flags
        stderrPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("tcp_chat-e2e-\(UUID().uuidString).stderr").path
        let errFD = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard errFD >= 0 else { throw E2EError("cannot create \(stderrPath): \(errnoText())") }
        defer { close(errFD) }
        stdout = try OutputPipe()

        if let fdLimit {
            var env = ProcessInfo.processInfo.environment
            env["TCP_CHAT_E2E_BIN"] = binary
            child = try ChildProcess(
                executable: "/bin/sh",
                arguments: ["-c", "ulimit -n \(fdLimit) && exec \"$TCP_CHAT_E2E_BIN\" \"$@\"", "sh"] + args,
                environment: env, stdout: stdout.childEnd, stderr: errFD)
        } else {
            child = try ChildProcess(executable: binary, arguments: args, environment: environment,
                                     stdout: stdout.childEnd, stderr: errFD)
        }
        stdout.closeWriteEnd()

        let command = ([binary] + args).joined(separator: " ")
        guard stdout.waitFor("\n", timeout: startTimeout), let line = stdout.text.split(separator: "\n").first else {
            let out = stdout.text
            let why = child.hasExited ? child.statusText : "printed no line"
            child.killAndReap()
            throw E2EError("""
                `\(command)` \(why) within \(startTimeout) instead of `listening on HOST:PORT` \
                (stdout: \(describe(Array(out.utf8)))).
                --- node stderr ---
                \(Self.tail(of: stderrPath))
                """)
        }
        // `listening on 127.0.0.1:40123` or `listening on [::1]:40123`
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":"),
              let p = Int(line[line.index(after: colon)...]), p > 0, p < 65536 else {
            child.killAndReap()
            throw E2EError("`\(command)` printed \"\(line)\" instead of `listening on HOST:PORT`")
        }
        port = p
    }

    deinit {
        child.killAndReap()
        unlink(stderrPath)
    }

    var isRunning: Bool { !child.hasExited }

    /// What the node logged so far.
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last lines of stderr, for failure messages.
    var stderrTail: String { Self.tail(of: stderrPath) }

    func send(signal: Int32) { child.send(signal: signal) }

    /// Waits up to `timeout` for the process to end. True if it did.
    func waitForExit(timeout: Duration) -> Bool { child.waitForExit(timeout: timeout) }

    /// Sends `signal` and waits for the node to exit; returns its exit status.
    /// Throws (and kills it) if it is still running after `timeout` or died of a signal.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(5)) throws -> Int32 {
        send(signal: signal)
        return try exitStatus(within: timeout)
    }

    /// Waits for the node to exit by itself and returns its exit status. Throws (and kills
    /// it) if it is still running after `timeout` or died of a signal.
    func exitStatus(within timeout: Duration) throws -> Int32 {
        guard child.waitForExit(timeout: timeout) else {
            child.killAndReap()
            throw E2EError("the node did not exit within \(timeout)\n--- node stderr ---\n\(stderrTail)")
        }
        guard let code = child.exitCode else {
            throw E2EError("the node \(child.statusText)\n--- node stderr ---\n\(stderrTail)")
        }
        return code
    }

    /// CPU time (user + system) the node has used, from /proc/PID/stat.
    func cpuSeconds() throws -> Double {
        guard let stat = readWholeFile("/proc/\(pid)/stat") else { throw E2EError("cannot read /proc/\(pid)/stat") }
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        guard let close = stat.lastIndex(of: ")") else { throw E2EError("unreadable /proc/\(pid)/stat: \(stat)") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else {
            throw E2EError("unreadable /proc/\(pid)/stat: \(stat)")
        }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// How many file descriptors the node has open, from /proc/PID/fd.
    func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    private static func tail(of path: String, lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(stderr unreadable)"
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines).joined(separator: "\n")
    }
}

/// Runs `body` against a fresh node; a thrown failure carries the node's stderr.
/// When `body` returns, the node gets SIGTERM and must exit 0 within 5 s (else it is
/// killed and the test fails): every test ends with a clean stop.
func withNode<T>(_ flags: [String] = [], address: String = "127.0.0.1", fdLimit: Int? = nil,
                 _ body: (NodeProcess) throws -> T) throws -> T {
    let node = try NodeProcess(flags, address: address, fdLimit: fdLimit)
    defer {
        do {
            let status = try node.stop(signal: SIGTERM, timeout: .seconds(5))
            #expect(status == 0, "the node exited with status \(status) after SIGTERM\n--- node stderr ---\n\(node.stderrTail)")
        } catch {
            Issue.record("stopping the node: \(error)")
        }
    }
    do {
        return try body(node)
    } catch {
        throw E2EError("\(error)\n--- node stderr (tail) ---\n\(node.stderrTail)")
    }
}

/// Where the `tcp_chat` executable under test is.
enum NodeBinary {
    /// `TCP_CHAT_BIN` if set; else `tcp_chat` next to the test runner or bundle;
    /// else the package's `.build/debug/tcp_chat`.
    static func path() throws -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["TCP_CHAT_BIN"], !env.isEmpty {
            guard fm.isExecutableFile(atPath: env) else { throw E2EError("TCP_CHAT_BIN=\(env) is not an executable file") }
            return env
        }
        var candidates: [URL] = []
        if let arg0 = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: arg0).resolvingSymlinksInPath().deletingLastPathComponent())
        }
        let bundle = Bundle.main.bundleURL
        candidates.append(bundle)
        candidates.append(bundle.deletingLastPathComponent())
        // Tests/ChatNodeTests/Support/NodeProcess.swift → package root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        candidates.append(URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(".build/debug"))
        let paths = candidates.map { $0.appendingPathComponent("tcp_chat").path }
        for p in paths where fm.isExecutableFile(atPath: p) { return p }
        throw E2EError("tcp_chat not found (set TCP_CHAT_BIN); looked at: \(paths.joined(separator: ", "))")
    }
}
