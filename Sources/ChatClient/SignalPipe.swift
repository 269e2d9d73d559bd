import Glibc

/// Turns signals into bytes on a pipe that the poll loop watches (the self-pipe trick), so
/// SIGINT/SIGTERM/SIGHUP end the session through the normal path, which restores the
/// terminal, and SIGWINCH redraws the prompt. The handler only calls write(2), which is
/// async-signal-safe.
final class SignalPipe {
    let readFD: Int32
    private let writeFD: Int32
    private let signals: [Int32]

    /// Written once before the handlers are installed, read only by the handler.
    nonisolated(unsafe) private static var handlerFD: Int32 = -1

    init?(signals: [Int32]) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds {   // pipe2 is not visible from Swift's Glibc: set the flags one by one
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
        self.signals = signals
        SignalPipe.handlerFD = writeFD
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(SignalPipe.handlerFD, &byte, 1)
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(sig, &action, nil)
        }
        // A parent may have spawned us with these blocked (the mask is inherited); then
        // SIGTERM would never reach the handler and the terminal would stay raw.
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }

    /// Signals received since the last call, oldest first.
    func take() -> [Int32] {
        var got: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, 64) }
            guard n > 0 else { break }
            got += buffer[0..<n].map { Int32($0) }
        }
        return got
    }

    /// Puts the default handlers back and closes the pipe.
    func uninstall() {
        for sig in signals { signal(sig, SIG_DFL) }
        SignalPipe.handlerFD = -1
        close(readFD)
        close(writeFD)
    }
}
