import Glibc

/// Sends the handshake and waits (bounded) for the node's reply.
enum HandshakeExchange {
    enum Failure: Error, Equatable {
        case timedOut
        /// The node closed the connection before answering.
        case closed
        case socketError(Int32)
        case interrupted(Int32)
    }

    static func perform(fd: Int32, handshake: [UInt8], timeoutMs: Int, signals: SignalPipe) -> Result<HandshakeReply, Failure> {
        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        var unsent = handshake[...]
        var received: [UInt8] = []
        while true {
            if !unsent.isEmpty {
                let n = Posix.send(fd, unsent)
                if n < 0 { return .failure(.socketError(Int32(-n))) }
                unsent = unsent.dropFirst(n)
            }
            let now = Posix.nowMs()
            guard now < deadline else { return .failure(.timedOut) }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (unsent.isEmpty ? 0 : Int16(POLLOUT)), revents: 0),
                       pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)]
            _ = Posix.poll(&fds, timeoutMs: Int(deadline - now))
            if let sig = signals.take().first(where: { $0 != SIGWINCH }) { return .failure(.interrupted(sig)) }
            guard fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            switch Posix.read(fd) {
            case .data(let bytes):
                received += bytes
                if let reply = HandshakeReply.parse(received) { return .success(reply) }
            case .eof:
                return received.isEmpty ? .failure(.closed) : .success(.unexpected(received))
            case .wouldBlock:
                continue
            case .error(let e):
                return .failure(.socketError(e))
            }
        }
    }
}
