/// A child process started with posix_spawn(3), with a clean signal state.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process the tests start and always reap.
///
/// Not Foundation's `Process`: it spawns with the calling thread's signal mask, and the
/// test runner's worker threads block SIGINT and SIGTERM, so a node started from a test
/// would never see the signals the shutdown tests send. Here the child starts with an
/// empty mask and every signal at its default, in a process group of its own, and with no
/// descriptor but its stdin, stdout and stderr.
public final class ChildProcess {
    public let pid: pid_t
    private var waitStatus: Int32?

    /// `stdin`/`stdout`/`stderr` are descriptors the child gets as 0/1/2 (nil: /dev/null).
    public init(executable: String, arguments: [String], environment: [String: String]? = nil,
         directory: String? = nil, stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, target) in [(stdin, STDIN_FILENO), (stdout, STDOUT_FILENO), (stderr, STDERR_FILENO)] {
            if let fd {
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
            }
        }
        // glibc has these two, but Swift's Glibc module does not declare them (_GNU_SOURCE).
        let handle = dlopen(nil, RTLD_NOW)
        if let sym = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(sym, to: CloseFrom.self)(&actions, 3)
        }
        if let directory {
            guard let sym = dlsym(handle, "posix_spawn_file_actions_addchdir_np") else {
                throw E2EError("this libc cannot spawn a child in another directory")
            }
            typealias Chdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
            _ = unsafeBitCast(sym, to: Chdir.self)(&actions, directory)
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

        let env = environment ?? ProcessInfo.processInfo.environment
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
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

    /// True once the child has ended (and was reaped).
    public var hasExited: Bool { reap(blocking: false) }

    /// Waits up to `timeout` for the child to end. True if it did.
    public func waitForExit(timeout: Duration) -> Bool {
        let deadline = Deadline(timeout)
        while !reap(blocking: false) {
            if deadline.expired { return false }
            usleep(5_000)
        }
        return true
    }

    /// The exit code, if the child exited normally.
    public var exitCode: Int32? {
        guard let s = waitStatus, s & 0x7F == 0 else { return nil }
        return (s >> 8) & 0xFF
    }

    /// The signal that killed the child, if one did.
    public var terminatingSignal: Int32? {
        guard let s = waitStatus, s & 0x7F != 0, s & 0x7F != 0x7F else { return nil }
        return s & 0x7F
    }

    /// "exited with status 0", "killed by signal 9", "still running".
    public var statusText: String {
        if let c = exitCode { return "exited with status \(c)" }
        if let s = terminatingSignal { return "killed by signal \(s)" }
        return "still running"
    }

    public func send(signal: Int32) {
        if waitStatus == nil { _ = kill(pid, signal) }
    }

    /// SIGKILL if still running, then reap: no test leaves a process behind.
    public func killAndReap() {
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

/// A pipe whose read end the test keeps and whose write end a child gets.
/// Both ends are close-on-exec (and every child here starts with only 0, 1 and 2 open),
/// so no other child inherits them.
public struct PipePair {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw E2EError("pipe failed: \(errnoText())") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        readEnd = fds[0]
        writeEnd = fds[1]
    }
}
