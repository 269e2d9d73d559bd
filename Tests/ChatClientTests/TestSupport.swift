import Foundation
import Glibc
import Testing
import TestSupport

/// Where the binaries and the original server are, and how to run them with bounded waits.
enum TestEnv {
    static let env = ProcessInfo.processInfo.environment
    static var isCI: Bool { env["CI"] != nil }

    /// The unpacked original (`cn_tcp_server` 0.0.2): `$TCP_CHAT_SEED_DIR` or /tmp/seed/….
    static let seedDirectory: String? = {
        let dir = env["TCP_CHAT_SEED_DIR"] ?? "/tmp/seed/cn_tcp_server-0.0.2"
        return FileManager.default.fileExists(atPath: dir + "/tcp_chat/__main__.py") ? dir : nil
    }()

    static var tmuxPath: String? {
        ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Tests needing the original server run when it is there, and always on CI (where its
    /// absence must fail, not skip).
    static var seedTestsEnabled: Bool { seedDirectory != nil || isCI }

    /// Records a failure on CI, or prints why the test does nothing here.
    static func unavailable(_ reason: String) {
        if isCI { Issue.record(Comment(rawValue: reason)) } else { print("skipped: \(reason)") }
    }

    static func requireBinary() throws -> String {
        try NodeBinary.path()
    }
}

/// Runs `body` (a spawn) with the terminating signals unblocked on this thread. Test
/// threads (Dispatch workers) block SIGTERM, SIGINT, SIGHUP…, and a spawned child inherits
/// the mask: it would ignore our SIGTERM, and tmux panes their SIGHUP. SIGCHLD stays
/// blocked: Foundation learns of child exits through it, and this thread must not eat one.
func withSignalsUnblocked<T>(_ body: () throws -> T) rethrows -> T {
    var set = sigset_t()
    var old = sigset_t()
    sigemptyset(&set)
    for sig in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM, SIGUSR1, SIGUSR2] { sigaddset(&set, sig) }
    pthread_sigmask(SIG_UNBLOCK, &set, &old)
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    return try body()
}

/// Runs `argv` to completion (bounded: killed after `timeout` s) and returns its stdout.
/// A `ChildProcess` (empty signal mask, stdin and stderr on /dev/null, no other descriptor),
/// so the stdout pipe reaches no grandchild it forks (tmux's server) beyond fd 1, and EOF
/// comes when the tool exits.
func runTool(_ argv: [String], environment: [String: String], timeout: Double = 5) -> String {
    guard let out = try? PipePair() else { return "" }
    defer { close(out.readEnd) }
    let child = try? ChildProcess(executable: argv[0], arguments: Array(argv.dropFirst()), environment: environment, stdout: out.writeEnd)
    close(out.writeEnd)
    guard let child else { return "" }
    let deadline = Deadline(.milliseconds(Int(timeout * 1000)))
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        var p = pollfd(fd: out.readEnd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, deadline.pollMilliseconds) > 0 else { break }
        let n = read(out.readEnd, &buffer, buffer.count)
        if n <= 0 { break }
        output += buffer[0..<n]
    }
    // It has closed stdout, so it is exiting; SIGKILL if it overstays.
    if !child.waitForExit(timeout: .milliseconds(max(Int(deadline.pollMilliseconds), 100))) { child.killAndReap() }
    return String(decoding: output, as: UTF8.self)
}

/// A loopback port nobody listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    try #require(ok)
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A plain TCP client for the other side of a conversation (blocking connect, bounded reads).
final class RawSocket {
    let fd: Int32
    private(set) var received: [UInt8] = []

    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `received` satisfies `done`, EOF, or the deadline. Returns whether `done` held.
    @discardableResult
    func read(timeout: Double = 5, until done: ([UInt8]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !done(received) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return done(received) }
            received += buffer[0..<n]
        }
        return true
    }

    func read(timeout: Double = 5, untilContains text: String) -> Bool {
        read(timeout: timeout) { String(decoding: $0, as: UTF8.self).contains(text) }
    }

    var receivedText: String { String(decoding: received, as: UTF8.self) }
}

/// A listening socket on 127.0.0.1 that stands in for a node in protocol-edge tests.
final class FakeNode {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        try #require(ok)
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }

    func accept(timeout: Double = 10) throws -> RawSocket {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        try #require(poll(&p, 1, Int32(timeout * 1000)) > 0, "no connection within \(timeout) s")
        let c = Glibc.accept(fd, nil, nil)
        try #require(c >= 0)
        return RawSocket(fd: c)
    }
}

/// Output collected from a child process, with waits that wake on new data.
final class OutputBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    private var data = Data()
    private var closed = false

    func append(_ chunk: Data) {
        condition.lock()
        if chunk.isEmpty { closed = true } else { data.append(chunk) }
        condition.broadcast()
        condition.unlock()
    }

    var text: String {
        condition.lock(); defer { condition.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits until the text contains `needle` (true) or the deadline / EOF passes (false).
    func wait(for needle: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock(); defer { condition.unlock() }
        while !String(decoding: data, as: UTF8.self).contains(needle) {
            if closed || !condition.wait(until: deadline) { return String(decoding: data, as: UTF8.self).contains(needle) }
        }
        return true
    }
}

/// A child process with piped stdin and collected stdout/stderr.
final class Child {
    let process = Process()
    let stdinPipe = Pipe()
    let stdout = OutputBuffer()
    let stderr = OutputBuffer()
    private let exited = DispatchSemaphore(value: 0)

    init(_ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = out
        process.standardError = err
        let (o, e) = (stdout, stderr)
        out.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            o.append(d)
            if d.isEmpty { h.readabilityHandler = nil }
        }
        err.fileHandleForReading.readabilityHandler = { h in
            let d = h.availableData
            e.append(d)
            if d.isEmpty { h.readabilityHandler = nil }
        }
        let sem = exited
        process.terminationHandler = { _ in sem.signal() }
        try withSignalsUnblocked { try process.run() }
    }

    func write(_ text: String) {
        stdinPipe.fileHandleForWriting.write(Data(text.utf8))
    }

    func closeStdin() {
        try? stdinPipe.fileHandleForWriting.close()
    }

    /// The exit status, or nil if the process is still running after `timeout` seconds.
    func waitForExit(timeout: Double) -> Int32? {
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exited.signal()   // later calls see it too
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace` seconds. By PID, never by name.
    func stop(grace: Double = 3) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if waitForExit(timeout: grace) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(timeout: grace)
        }
    }

    deinit { stop() }
}

/// The original Python server (`cn_tcp_server` 0.0.2: what we are compatible with), on a free port.
final class SeedServer {
    let child: Child
    let port: Int
    let workDir: URL

    /// Its SysLogHandler('/dev/log') fails on machines without syslog: point it at the
    /// discard port instead (as bench/run does); nothing else of the server changes.
    static let wrapper = """
    import logging.handlers, os, runpy, sys
    sys.path.insert(0, os.getcwd())
    _orig = logging.handlers.SysLogHandler.__init__
    def _init(self, address=("localhost", 514), *a, **k):
        if address == "/dev/log":
            address = ("127.0.0.1", 9)
        _orig(self, address, *a, **k)
    logging.handlers.SysLogHandler.__init__ = _init
    sys.argv = ["tcp_chat"] + sys.argv[1:]
    runpy.run_module("tcp_chat", run_name="__main__", alter_sys=True)
    """

    init(seedDirectory: String) throws {
        workDir = FileManager.default.temporaryDirectory.appendingPathComponent("chatclient-seed-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
        let script = workDir.appendingPathComponent("seed_wrapper.py")
        try SeedServer.wrapper.write(to: script, atomically: true, encoding: .utf8)
        port = try freePort()
        var env = TestEnv.env
        env["PYTHONUNBUFFERED"] = "1"
        let python = TestEnv.env["SEED_PYTHON"] ?? "python3"
        child = try Child("/usr/bin/env", [python, script.path, "server", "-a", "127.0.0.1", "-p", String(port)],
                          directory: seedDirectory, environment: env)
        // Ready when it accepts: a probe that connects and closes gets a harmless 400.
        let up = eventually(.seconds(10)) {
            guard child.process.isRunning else { return true }
            return (try? RawSocket(port: port)) != nil
        }
        guard up, child.process.isRunning else {
            child.stop()
            throw SeedError.notReady(child.stdout.text + child.stderr.text)
        }
    }

    enum SeedError: Error { case notReady(String) }

    deinit {
        child.stop()
        try? FileManager.default.removeItem(at: workDir)
    }
}
