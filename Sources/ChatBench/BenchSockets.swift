import ChatCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A resolved target: the address the clients connect to.
struct ResolvedTarget {
    let text: String
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 { Int32(storage.ss_family) }
}

/// Socket helpers for the load tool: plain POSIX, non-blocking, no libuv, no Foundation.
enum BenchSockets {
    static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The addresses of `target`, in resolver order.
    static func resolve(_ hp: HostPort) throws(BenchSetupError) -> [ResolvedTarget] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(hp.host, String(hp.port), &hints, &res)
        guard rc == 0, let first = res else {
            throw BenchSetupError("cannot resolve \(hp): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var out: [ResolvedTarget] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if let sa = ai.pointee.ai_addr, ai.pointee.ai_family == AF_INET || ai.pointee.ai_family == AF_INET6 {
                var t = ResolvedTarget(text: hp.description)
                withUnsafeMutableBytes(of: &t.storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                }
                t.length = ai.pointee.ai_addrlen
                out.append(t)
            }
            p = ai.pointee.ai_next
        }
        if out.isEmpty { throw BenchSetupError("cannot resolve \(hp): no IPv4 or IPv6 address") }
        return out
    }

    /// The first address of `hp` that accepts a TCP connection within `timeoutNs` (the probe
    /// connection is closed at once, before any handshake).
    static func reachable(_ hp: HostPort, timeoutNs: UInt64) throws(BenchSetupError) -> ResolvedTarget {
        let candidates = try resolve(hp)
        var why: [String] = []
        let deadline = nowNs() &+ timeoutNs
        for var c in candidates {
            let fd = openSocket(family: c.family)
            guard fd >= 0 else { throw BenchSetupError("cannot open a socket: \(errnoText())") }
            defer { close(fd) }
            let rc = withUnsafePointer(to: &c.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, c.length) }
            }
            var err: Int32 = rc == 0 ? 0 : errno
            if rc != 0 && err == EINPROGRESS {
                while true {
                    let now = nowNs()
                    if now >= deadline { err = ETIMEDOUT; break }
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let ms = Int32(min((deadline - now + 999_999) / 1_000_000, 1000))
                    let n = poll(&p, 1, ms)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { continue }
                    var soErr: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                    err = soErr
                    break
                }
            }
            if err == 0 { return c }
            why.append("\(address(c)): \(err == ETIMEDOUT ? "timed out" : errnoText(err))")
        }
        throw BenchSetupError("cannot connect to \(hp): " + why.joined(separator: "; "))
    }

    /// A non-blocking, close-on-exec TCP socket with Nagle off.
    static func openSocket(family: Int32) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd >= 0 {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return fd
    }

    /// `127.0.0.1:8888`, `[::1]:8888`.
    static func address(_ t: ResolvedTarget) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var s = t.storage
        if t.family == AF_INET {
            return withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
                    return text(buf) + ":\(UInt16(bigEndian: sin.pointee.sin_port))"
                }
            }
        }
        return withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                var a = sin.pointee.sin6_addr
                inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
                return "[" + text(buf) + "]:\(UInt16(bigEndian: sin.pointee.sin6_port))"
            }
        }
    }

    private static func text(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Raises the soft descriptor limit to the hard one; returns the soft limit in force.
    static func raiseDescriptorLimit() -> UInt64 {
        var rl = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &rl) == 0 else { return 1024 }
        if rl.rlim_cur < rl.rlim_max {
            var want = rl
            want.rlim_cur = rl.rlim_max
            if setrlimit(resource, &want) == 0 { rl = want }
        }
        return UInt64(rl.rlim_cur)
    }

    /// This process's user + system CPU seconds.
    static func cpuSeconds() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }
}

/// The run could not start or could not log its clients in: what happened, in words.
public struct BenchSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
