/// Child processes for the bench's end-to-end tests: the real `tcp_chat` binary, started
/// with posix_spawn, its output read with bounded waits. (A trimmed copy of the helpers in
/// Tests/ChatNodeTests/Support, which this target does not import.)
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func errnoText(_ code: Int32 = errno) -> String { "\(String(cString: strerror(code))) (errno \(code))" }

let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// The moment a wait gives up.
struct Deadline {
    let end: ContinuousClock.Instant
    init(_ timeout: Duration) { end = .now + timeout }
    var expired: Bool { ContinuousClock.now >= end }
    var pollMilliseconds: Int32 {
        let left = end - ContinuousClock.now
        if left <= .zero { return 0 }
        let (s, atto) = left.components
        return Int32(min((Double(s) * 1000 + Double(atto) / 1e15).rounded(.up), Double(Int32.max)))
    }
}

/// A pipe whose read end the test keeps; both ends close-on-exec.
struct PipePair {
    let readEnd: Int32
    let writeEnd: Int32
    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw E2EError("pipe failed: \(errnoText())") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        readEnd = fds[0]
        writeEnd = fds[1]
    }
}

/// A process the tests start and always reap: empty signal mask, default dispositions,
/// its own process group, only stdin/stdout/stderr open.
final class ChildProcess {
    let pid: pid_t
    private var waitStatus: Int32?

    init(executable: String, arguments: [String], stdout: Int32? = nil, stderr: Int32? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        for (fd, target) in [(stdout, STDOUT_FILENO), (stderr, STDERR_FILENO)] {
            if let fd { posix_spawn_file_actions_adddup2(&actions, fd, target) } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        let handle = dlopen(nil, RTLD_NOW)
        if let sym = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(sym, to: CloseFrom.self)(&actions, 3)
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else { throw E2EError("cannot start \(executable): \(errnoText(rc))") }
        self.pid = pid
    }

    deinit { killAndReap() }

    var exitCode: Int32? {
        guard let s = waitStatus, s & 0x7F == 0 else { return nil }
        return (s >> 8) & 0xFF
    }

    var statusText: String {
        guard let s = waitStatus else { return "still running" }
        if s & 0x7F == 0 { return "exited with status \((s >> 8) & 0xFF)" }
        return "killed by signal \(s & 0x7F)"
    }

    func send(signal: Int32) { if waitStatus == nil { _ = kill(pid, signal) } }

    /// Waits up to `timeout` for the child to end. True if it did.
    func waitForExit(timeout: Duration) -> Bool {
        let deadline = Deadline(timeout)
        while !reap(blocking: false) {
            if deadline.expired { return false }
            usleep(5_000)
        }
        return true
    }

    func killAndReap() {
        guard !reap(blocking: false) else { return }
        _ = kill(pid, SIGKILL)
        _ = reap(blocking: true)
    }

    private func reap(blocking: Bool) -> Bool {
        if waitStatus != nil { return true }
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if r == pid { waitStatus = status; return true }
            if r == 0 { return false }
            if errno == EINTR { continue }
            return false
        }
    }
}

/// Where the `tcp_chat` executable under test is: `TCP_CHAT_BIN`, else next to the test
/// runner, else the package's `.build/debug`.
enum NodeBinary {
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
        // Tests/ChatBenchTests/Support/Processes.swift → package root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        let paths = candidates.map { $0.appendingPathComponent("tcp_chat").path }
        for p in paths where fm.isExecutableFile(atPath: p) { return p }
        throw E2EError("tcp_chat not found (set TCP_CHAT_BIN); looked at: \(paths.joined(separator: ", "))")
    }
}

/// Reads a child's stdout and stderr to their ends (or a deadline), both at once so
/// neither pipe can fill up and stall the child.
struct CapturedOutput {
    var stdout = ""
    var stderr = ""
}

func readBoth(_ out: Int32, _ err: Int32, deadline: Deadline) -> (CapturedOutput, finished: Bool) {
    var bytes: [[UInt8]] = [[], []]
    var open = [true, true]
    let fds = [out, err]
    var buf = [UInt8](repeating: 0, count: 65536)
    while open[0] || open[1] {
        var p = (0..<2).map { pollfd(fd: open[$0] ? fds[$0] : -1, events: Int16(POLLIN), revents: 0) }
        let rc = poll(&p, 2, deadline.pollMilliseconds)
        if rc < 0 && errno == EINTR { continue }
        if rc <= 0 { break }
        for k in 0..<2 where open[k] && p[k].revents != 0 {
            let n = buf.withUnsafeMutableBytes { read(fds[k], $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { open[k] = false } else { bytes[k].append(contentsOf: buf[..<n]) }
        }
    }
    let o = CapturedOutput(stdout: String(decoding: bytes[0], as: UTF8.self), stderr: String(decoding: bytes[1], as: UTF8.self))
    return (o, !open[0] && !open[1])
}

/// `tcp_chat ARGS` run to its end within `timeout`: exit status and output.
struct Finished {
    let status: Int32
    let output: CapturedOutput
    var stdout: String { output.stdout }
    var stderr: String { output.stderr }

    /// The JSON object `--json` prints.
    func json() throws -> [String: Any] {
        guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw E2EError("no JSON object on stdout (status \(status)):\n\(stdout)\n--- stderr ---\n\(stderr)")
        }
        return obj
    }
}

/// `tcp_chat ARGS` still running, its output read on demand.
final class RunningTCPChat {
    let child: ChildProcess
    private let out: PipePair, err: PipePair
    private(set) var stderrSoFar: [UInt8] = []

    init(_ arguments: [String]) throws {
        _ = ignoreSIGPIPE
        out = try PipePair()
        err = try PipePair()
        child = try ChildProcess(executable: try NodeBinary.path(), arguments: arguments, stdout: out.writeEnd, stderr: err.writeEnd)
        close(out.writeEnd)
        close(err.writeEnd)
    }

    deinit {
        child.killAndReap()
        close(out.readEnd)
        close(err.readEnd)
    }

    /// Reads stderr until it holds `needle` (true) or the deadline passes or it ends (false).
    func waitForStderr(_ needle: String, timeout: Duration) -> Bool {
        let deadline = Deadline(timeout)
        var buf = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: stderrSoFar, as: UTF8.self).contains(needle) {
            var p = pollfd(fd: err.readEnd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { return false }
            let n = buf.withUnsafeMutableBytes { read(err.readEnd, $0.baseAddress!, $0.count) }
            if n <= 0 { return false }
            stderrSoFar.append(contentsOf: buf[..<n])
        }
        return true
    }

    /// Reads the rest of the output and waits for the exit, within `timeout`.
    func finish(timeout: Duration) throws -> Finished {
        let deadline = Deadline(timeout)
        var (output, _) = readBoth(out.readEnd, err.readEnd, deadline: deadline)
        output.stderr = String(decoding: stderrSoFar, as: UTF8.self) + output.stderr
        guard child.waitForExit(timeout: .milliseconds(max(Int(deadline.pollMilliseconds), 100))), let code = child.exitCode else {
            child.killAndReap()
            throw E2EError("tcp_chat did not finish within \(timeout) (\(child.statusText))\n\(output.stdout)\n--- stderr ---\n\(output.stderr)")
        }
        return Finished(status: code, output: output)
    }
}

func runTCPChat(_ arguments: [String], timeout: Duration) throws -> Finished {
    _ = ignoreSIGPIPE
    let out = try PipePair(), err = try PipePair()
    let child = try ChildProcess(executable: try NodeBinary.path(), arguments: arguments, stdout: out.writeEnd, stderr: err.writeEnd)
    close(out.writeEnd)
    close(err.writeEnd)
    defer {
        close(out.readEnd)
        close(err.readEnd)
    }
    let deadline = Deadline(timeout)
    let (output, _) = readBoth(out.readEnd, err.readEnd, deadline: deadline)
    guard child.waitForExit(timeout: .milliseconds(max(Int(deadline.pollMilliseconds), 100))), let code = child.exitCode else {
        child.killAndReap()
        throw E2EError("`tcp_chat \(arguments.joined(separator: " "))` did not finish within \(timeout) (\(child.statusText))\n\(output.stdout)\n--- stderr ---\n\(output.stderr)")
    }
    return Finished(status: code, output: output)
}

/// A real node: `tcp_chat server -a 127.0.0.1 -p 0 FLAGS`, stopped with SIGTERM at the end.
final class TestNode {
    let child: ChildProcess
    let port: Int
    private let stdout: PipePair

    init(_ flags: [String] = ["--rate-limit", "0"]) throws {
        _ = ignoreSIGPIPE
        let pipe = try PipePair()
        stdout = pipe
        child = try ChildProcess(executable: try NodeBinary.path(), arguments: ["server", "-a", "127.0.0.1", "-p", "0"] + flags,
                                 stdout: pipe.writeEnd)
        close(pipe.writeEnd)
        // `listening on 127.0.0.1:40123`, within 10 s.
        let deadline = Deadline(.seconds(10))
        var text: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !text.contains(0x0A) {
            var p = pollfd(fd: pipe.readEnd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { break }
            let n = buf.withUnsafeMutableBytes { read(pipe.readEnd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            text.append(contentsOf: buf[..<n])
        }
        let line = String(decoding: text, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":"),
              let p = Int(line[line.index(after: colon)...]) else {
            child.killAndReap()
            close(pipe.readEnd)
            throw E2EError("the node printed \"\(line)\" instead of `listening on HOST:PORT` (\(child.statusText))")
        }
        port = p
    }

    /// SIGTERM, then the exit status (killed after 5 s).
    func stop() -> Int32? {
        child.send(signal: SIGTERM)
        if !child.waitForExit(timeout: .seconds(5)) { child.killAndReap() }
        return child.exitCode
    }

    deinit {
        child.killAndReap()
        close(stdout.readEnd)
    }
}
