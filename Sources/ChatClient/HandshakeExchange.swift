import Glibc

/// Sends the handshake and waits (bounded) for the reply, as HandshakePlan decides it.
enum HandshakeExchange {
    enum Failure: Error, Equatable {
        case timedOut
        /// The node closed the connection before answering.
        case closed
        case socketError(Int32)
        case interrupted(Int32)
    }

    /// Sends `handshake`, then reads until `decide(received, graceOver)` is not `.wait`.
    /// `graceOver` turns true `graceMs` after the first reply byte (or at EOF).
    static func perform(fd: Int32, handshake: [UInt8], timeoutMs: Int, graceMs: Int, signals: SignalPipe,
                        decide: ([UInt8], Bool) -> HandshakePlan.Step) -> Result<HandshakePlan.Step, Failure> {
        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        var graceEnd: UInt64?
        var unsent = handshake[...]
        var received: [UInt8] = []
        while true {
            if !unsent.isEmpty {
                let n = Posix.send(fd, unsent)
                if n < 0 { return .failure(.socketError(Int32(-n))) }
                unsent = unsent.dropFirst(n)
            }
            let now = Posix.nowMs()
            if let end = graceEnd, now >= end {
                let step = decide(received, true)
                if step != .wait { return .success(step) }
            }
            guard now < deadline else { return .failure(.timedOut) }
            let wake = min(deadline, graceEnd.map { max($0, now) } ?? deadline)
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (unsent.isEmpty ? 0 : Int16(POLLOUT)), revents: 0),
                       pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)]
            _ = Posix.poll(&fds, timeoutMs: Int(wake - now))
            if let sig = signals.take().first(where: { $0 != SIGWINCH }) { return .failure(.interrupted(sig)) }
            guard fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            switch Posix.read(fd) {
            case .data(let bytes):
                if received.isEmpty { graceEnd = Posix.nowMs() + UInt64(graceMs) }
                received += bytes
                let step = decide(received, graceEnd.map { Posix.nowMs() >= $0 } ?? false)
                if step != .wait { return .success(step) }
            case .eof:
                if received.isEmpty { return .failure(.closed) }
                let step = decide(received, true)
                return .success(step == .wait ? .refused(.unexpected(received)) : step)
            case .wouldBlock:
                continue
            case .error(let e):
                return .failure(.socketError(e))
            }
        }
    }

    /// Leaves a connection after the fallback decision: our side ends (EOF is how the
    /// original server learns a client left; it then sends `/exit` and closes), and we wait,
    /// bounded, for its close, so that it has let go of our name before we come back.
    /// Closes `fd` in every case; returns a signal (Ctrl+C, SIGTERM) that came meanwhile.
    static func leave(fd: Int32, timeoutMs: Int, signals: SignalPipe) -> Int32? {
        defer { close(fd) }
        shutdown(fd, Int32(SHUT_WR))
        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        while true {
            let now = Posix.nowMs()
            guard now < deadline else { return nil }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)]
            _ = Posix.poll(&fds, timeoutMs: Int(deadline - now))
            if let sig = signals.take().first(where: { $0 != SIGWINCH }) { return sig }
            guard fds[0].revents != 0 else { continue }
            switch Posix.read(fd) {
            case .data, .wouldBlock: continue
            case .eof, .error: return nil
            }
        }
    }

    /// Waits `ms`, or less if a signal comes (returned).
    static func pause(ms: Int, signals: SignalPipe) -> Int32? {
        let deadline = Posix.nowMs() + UInt64(ms)
        while true {
            let now = Posix.nowMs()
            guard now < deadline else { return nil }
            var fds = [pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)]
            _ = Posix.poll(&fds, timeoutMs: Int(deadline - now))
            if let sig = signals.take().first(where: { $0 != SIGWINCH }) { return sig }
        }
    }
}
