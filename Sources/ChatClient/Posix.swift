import Glibc

/// Small wrappers over the system calls the client uses.
enum Posix {
    /// Monotonic milliseconds: deadlines must not jump with the wall clock.
    static func nowMs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Writes everything to `fd` (stdout/stderr), waiting out EAGAIN and EINTR. Errors (a
    /// closed pipe, a hung-up terminal) are ignored: there is nowhere left to report them.
    static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        writeAll(fd, &bytes)
    }

    static func writeAll(_ fd: Int32, _ bytes: inout [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if Glibc.poll(&p, 1, 1000) > 0 { continue }
            }
            return
        }
    }

    /// Reads up to `max` bytes: `.data`, `.eof`, `.wouldBlock`, or `.error(errno)`.
    enum ReadResult { case data([UInt8]), eof, wouldBlock, error(Int32) }

    static func read(_ fd: Int32, max: Int = 65536) -> ReadResult {
        if let ssl = TLSClient.session(for: fd) { return TLSClient.read(ssl, max: max) }
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, max) }
            if n > 0 { return .data(Array(buffer[0..<n])) }
            if n == 0 { return .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .error(errno)
            }
        }
    }

    /// Sends what the socket takes now; returns bytes sent, or -errno (EAGAIN gives 0).
    static func send(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int {
        if let ssl = TLSClient.session(for: fd) { return TLSClient.send(ssl, bytes) }
        while true {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: return -Int(errno)
            }
        }
    }

    /// poll(2) that retries on EINTR (a signal also wakes us through the signal pipe).
    static func poll(_ fds: inout [pollfd], timeoutMs: Int) -> Int32 {
        while true {
            let r = Glibc.poll(&fds, nfds_t(fds.count), Int32(clamping: timeoutMs))
            if r >= 0 || errno != EINTR { return r }
        }
    }
}
