import Glibc

/// Resolves the node's address and opens a TCP connection to it, bounded in time.
enum Connector {
    enum Failure: Error, Equatable {
        /// Resolution or connection failed; the text is what to show after "Cannot connect to …: ".
        case failed(String)
        /// A signal (Ctrl+C, SIGTERM) arrived while waiting.
        case interrupted(Int32)
    }

    /// Tries every address `host` resolves to (IPv6 and IPv4; `localhost` gives both) until
    /// one accepts, all within `timeoutMs`. Returns a non-blocking socket with TCP_NODELAY
    /// set (chat messages are small and should leave at once).
    static func connect(host: String, port: Int, timeoutMs: Int, signals: SignalPipe) -> Result<Int32, Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            let text = rc == EAI_SYSTEM ? Posix.errorText(errno) : String(cString: gai_strerror(rc))
            return .failure(.failed(text))
        }
        defer { freeaddrinfo(list) }

        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        var lastError = "no address to try"
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let ai = node {
            node = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family,
                            ai.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            ai.pointee.ai_protocol)
            if fd < 0 { lastError = Posix.errorText(errno); continue }
            switch attempt(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen, deadline: deadline, signals: signals) {
            case .success:
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return .success(fd)
            case .failure(.interrupted(let sig)):
                close(fd)
                return .failure(.interrupted(sig))
            case .failure(.failed(let text)):
                close(fd)
                lastError = text
            }
            if Posix.nowMs() >= deadline { break }
        }
        return .failure(.failed(lastError))
    }

    private static func attempt(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t,
                                deadline: UInt64, signals: SignalPipe) -> Result<Void, Failure> {
        if Glibc.connect(fd, addr, len) == 0 { return .success(()) }
        guard errno == EINPROGRESS || errno == EINTR else { return .failure(.failed(Posix.errorText(errno))) }
        while true {
            let now = Posix.nowMs()
            guard now < deadline else { return .failure(.failed(Posix.errorText(ETIMEDOUT))) }
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0),
                       pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)]
            _ = Posix.poll(&fds, timeoutMs: Int(deadline - now))
            if let sig = signals.take().first(where: { $0 != SIGWINCH }) { return .failure(.interrupted(sig)) }
            if fds[0].revents != 0 {
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                return err == 0 ? .success(()) : .failure(.failed(Posix.errorText(err)))
            }
        }
    }
}
