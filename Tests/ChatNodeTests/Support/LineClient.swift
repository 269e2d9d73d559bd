/// A blocking test client for the chat protocol: POSIX sockets, every wait bounded by poll(2).
import Foundation
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

/// One TCP connection to a node, driven step by step by a test.
///
/// The socket is non-blocking; each call waits with poll(2) up to its timeout and throws an
/// `E2EError` that says what was expected and what arrived. Bytes received and not yet
/// consumed stay in `inbox`, so line and byte reads can be mixed.
final class LineClient {
    /// Shown in failure messages (`alice`, `junk#17`).
    let label: String
    private var fd: Int32
    private var inbox: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 65536)
    /// The peer closed (EOF) or reset the connection.
    private(set) var closedByPeer = false
    private(set) var closeError: String?
    /// Every byte ever received, consumed or not.
    private(set) var bytesReceived = 0

    static let defaultTimeout: Duration = .seconds(5)

    private init(fd: Int32, label: String) {
        self.fd = fd
        self.label = label
    }

    deinit { close() }

    // MARK: Connecting

    /// Connects to `host:port` (IPv4 or IPv6 literal). `receiveBufferBytes` sets SO_RCVBUF
    /// before the connection exists, so the TCP window is small from the start.
    static func connect(host: String = "127.0.0.1", port: Int, label: String = "client",
                        receiveBufferBytes: Int? = nil,
                        timeout: Duration = LineClient.defaultTimeout) throws -> LineClient {
        _ = ignoreSIGPIPE
        let v6 = host.contains(":")
        let family = v6 ? AF_INET6 : AF_INET
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = socket(family, type, 0)
        guard fd >= 0 else { throw E2EError("\(label): socket() failed: \(errnoText())") }
        let client = LineClient(fd: fd, label: label)
        if let size = receiveBufferBytes {
            var v = Int32(size)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw E2EError("\(label): SO_RCVBUF failed: \(errnoText())")
            }
        }
        // Each send() leaves at once: tests that split a message across writes mean it.
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))

        var rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port)).bigEndian
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else { throw E2EError("bad IPv6 address \(host)") }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port)).bigEndian
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw E2EError("bad IPv4 address \(host)") }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if rc != 0 {
            guard errno == EINPROGRESS else {
                throw E2EError("\(label): connect to \(host):\(port) failed: \(errnoText())")
            }
            let deadline = Deadline(timeout)
            guard try client.wait(for: Int16(POLLOUT), deadline) else {
                throw E2EError("\(label): connect to \(host):\(port) did not complete within \(timeout)")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                throw E2EError("\(label): connect to \(host):\(port) failed: \(String(cString: strerror(err)))")
            }
        }
        return client
    }

    /// Connects and logs in with a newline-terminated handshake: a *line* session.
    /// Throws unless the node answers `200\n`.
    static func join(_ user: String, _ room: String, port: Int, host: String = "127.0.0.1",
                     receiveBufferBytes: Int? = nil) throws -> LineClient {
        let c = try connect(host: host, port: port, label: user, receiveBufferBytes: receiveBufferBytes)
        try c.send("\(user)_\(room)\n")
        let reply = try c.readLine()
        guard reply == "200" else { throw E2EError("\(user): handshake \(user)_\(room)\\n expected 200, got \"\(reply)\"") }
        return c
    }

    /// Connects and logs in with a bare handshake ended by silence, as the original client
    /// does: a *raw* session. Throws unless the node answers exactly `200`.
    static func joinRaw(_ user: String, _ room: String, port: Int, host: String = "127.0.0.1") throws -> LineClient {
        let c = try connect(host: host, port: port, label: user)
        try c.send("\(user)_\(room)")
        let reply = try c.readExactly(3)
        guard reply == Array("200".utf8) else {
            throw E2EError("\(user): raw handshake \(user)_\(room) expected 200, got \(describe(reply))")
        }
        return c
    }

    // MARK: Sending

    func send(_ text: String, timeout: Duration = LineClient.defaultTimeout) throws {
        try send(bytes: Array(text.utf8), timeout: timeout)
    }

    /// Sends every byte, waiting (bounded) while the socket buffer is full.
    func send(bytes: [UInt8], timeout: Duration = LineClient.defaultTimeout) throws {
        guard fd >= 0 else { throw E2EError("\(label): send on a closed client") }
        let deadline = Deadline(timeout)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { buf in
                Glibc.send(fd, buf.baseAddress! + sent, buf.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                guard try wait(for: Int16(POLLOUT), deadline) else {
                    throw E2EError("\(label): could send only \(sent) of \(bytes.count) bytes within \(timeout) (the node stopped reading?)")
                }
                continue
            }
            throw E2EError("\(label): send failed after \(sent) of \(bytes.count) bytes: \(errnoText())")
        }
    }

    /// Sends what the socket takes now without waiting; returns how many bytes went.
    func trySend(bytes: ArraySlice<UInt8>) throws -> Int {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        if n >= 0 { return n }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        throw E2EError("\(label): send failed: \(errnoText())")
    }

    // MARK: Receiving

    /// The next `\n`-terminated line, without its `\n` (a `\r` is kept: tests compare exactly).
    func readLine(timeout: Duration = LineClient.defaultTimeout) throws -> String {
        let deadline = Deadline(timeout)
        while true {
            if let nl = inbox.firstIndex(of: 0x0A) {
                let line = Array(inbox[..<nl])
                inbox.removeSubrange(...nl)
                return String(decoding: line, as: UTF8.self)
            }
            if closedByPeer {
                throw E2EError("\(label): expected a line, but the connection was closed\(closeNote); unterminated bytes: \(describe(inbox))")
            }
            guard try fill(deadline) else {
                throw E2EError("\(label): expected a line within \(timeout), got \(inbox.isEmpty ? "nothing" : "only \(describe(inbox)) (no newline)")")
            }
        }
    }

    /// The next `count` lines.
    func readLines(_ count: Int, timeout: Duration = LineClient.defaultTimeout) throws -> [String] {
        let deadline = Deadline(timeout)
        var lines: [String] = []
        lines.reserveCapacity(count)
        while lines.count < count {
            do {
                lines.append(try readLine(timeout: max(.zero, deadline.end - .now)))
            } catch {
                throw E2EError("\(label): expected \(count) lines, got \(lines.count) (last: \(lines.last.map { "\"\($0)\"" } ?? "none")): \(error)")
            }
        }
        return lines
    }

    /// The complete lines received so far, without waiting (a partial line stays buffered).
    func availableLines() throws -> [String] {
        while !closedByPeer, try fill(Deadline(.zero)) {}
        var lines: [String] = []
        var start = inbox.startIndex
        while let nl = inbox[start...].firstIndex(of: 0x0A) {
            lines.append(String(decoding: inbox[start..<nl], as: UTF8.self))
            start = nl + 1
        }
        inbox.removeSubrange(..<start)
        return lines
    }

    /// Exactly `n` bytes (for raw sessions, whose messages carry no delimiter).
    func readExactly(_ n: Int, timeout: Duration = LineClient.defaultTimeout) throws -> [UInt8] {
        let deadline = Deadline(timeout)
        while inbox.count < n {
            if closedByPeer {
                throw E2EError("\(label): expected \(n) bytes, but the connection was closed\(closeNote) after \(describe(inbox))")
            }
            guard try fill(deadline) else {
                throw E2EError("\(label): expected \(n) bytes within \(timeout), got \(describe(inbox))")
            }
        }
        let out = Array(inbox[..<n])
        inbox.removeSubrange(..<n)
        return out
    }

    /// `expected`'s bytes exactly, next on the stream; throws with what came instead.
    func expectBytes(_ expected: String, timeout: Duration = LineClient.defaultTimeout) throws {
        let want = Array(expected.utf8)
        let got = try readExactly(want.count, timeout: timeout)
        guard got == want else {
            throw E2EError("\(label): expected \(describe(want)), got \(describe(got)); then buffered \(describe(inbox))")
        }
    }

    /// Waits up to `timeout` for at least one byte, then returns everything received so far
    /// (empty when nothing came or the connection is closed).
    func readAvailable(timeout: Duration = .zero) throws -> [UInt8] {
        let deadline = Deadline(timeout)
        if inbox.isEmpty && !closedByPeer { _ = try fill(deadline) }
        while !closedByPeer, try fill(Deadline(.zero)) {}
        let out = inbox
        inbox.removeAll()
        return out
    }

    /// Waits until the node closes the connection (EOF or reset) and returns the bytes that
    /// arrived before it, including any not yet consumed. Throws if it stays open.
    @discardableResult
    func expectClosed(timeout: Duration = LineClient.defaultTimeout) throws -> [UInt8] {
        let deadline = Deadline(timeout)
        while !closedByPeer {
            guard try fill(deadline, discardingBeyond: 1 << 20) else {
                throw E2EError("\(label): expected the node to close the connection within \(timeout); it is still open, received \(describe(inbox))")
            }
        }
        let out = inbox
        inbox.removeAll()
        return out
    }

    /// True when the connection has been reset or hung up, seen without reading the bytes
    /// still buffered ahead of that news.
    var isResetOrHungUp: Bool {
        let rdhup: Int16 = 0x2000   // POLLRDHUP, which Swift's Glibc module leaves out (_GNU_SOURCE)
        var p = pollfd(fd: fd, events: Int16(POLLIN) | rdhup, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        return p.revents & (Int16(POLLERR) | Int16(POLLHUP) | rdhup) != 0
    }

    /// The local port of this connection.
    var localPort: Int {
        var addr = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return -1 }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    // MARK: Closing

    /// Closes the socket (FIN). Safe to call twice.
    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    /// Closes with SO_LINGER 0, so the node sees a reset: a client that vanishes mid-stream.
    func reset() {
        guard fd >= 0 else { return }
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    // MARK: Internals

    private var closeNote: String { closeError.map { " (\($0))" } ?? "" }

    /// Waits for `events` until the deadline. False on timeout.
    private func wait(for events: Int16, _ deadline: Deadline) throws -> Bool {
        while true {
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, deadline.pollMilliseconds)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { throw E2EError("\(label): poll failed: \(errnoText())") }
        }
    }

    /// Receives once, waiting up to the deadline. True if bytes arrived or the peer closed;
    /// false on timeout. Past `discardingBeyond` buffered bytes the oldest are dropped
    /// (a drain that only wants the close).
    private func fill(_ deadline: Deadline, discardingBeyond cap: Int = .max) throws -> Bool {
        guard fd >= 0 else { throw E2EError("\(label): read on a closed client") }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 {
                bytesReceived += n
                inbox.append(contentsOf: chunk[..<n])
                if inbox.count > cap { inbox.removeFirst(inbox.count - cap) }
                return true
            }
            if n == 0 { closedByPeer = true; return true }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                if deadline.expired { return false }
                guard try wait(for: Int16(POLLIN), deadline) else { return false }
            case ECONNRESET, EPIPE:
                closedByPeer = true
                closeError = "reset"
                return true
            default:
                throw E2EError("\(label): recv failed: \(errnoText())")
            }
        }
    }
}
