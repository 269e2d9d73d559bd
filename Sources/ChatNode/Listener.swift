import CUV
import ChatCore

/// A listening TCP socket: resolves the configured host, binds, and reports new connections.
/// Called on the node's loop thread only.
final class Listener {
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    var onConnection: (Int32) -> Void
    private var closed = false
    /// The address really bound, as text (`127.0.0.1:40123`, `[::1]:40123`).
    private(set) var boundAddress = ""

    enum Failure: Error, CustomStringConvertible {
        case resolve(String, String)
        case bind(String, String)
        var description: String {
            switch self {
            case .resolve(let host, let why): return "cannot resolve \(host): \(why)"
            case .bind(let addr, let why): return "cannot listen on \(addr): \(why)"
            }
        }
    }

    init(loop: EventLoop, host: String, port: Int, onConnection: @escaping (Int32) -> Void) throws {
        self.onConnection = onConnection
        let address = try resolve(loop: loop, host: host, port: port)
        tcp = .allocate(capacity: 1)
        uv_tcp_init(loop.raw, tcp)
        tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var rc = address.withUnsafeBytes { uv_tcp_bind(tcp, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), 0) }
        // Enough backlog for bursts of logins; the kernel caps it at somaxconn.
        if rc == 0 { rc = uv_listen(cuv_stream(tcp), Tunables.listenBacklog, onListen) }
        if rc != 0 {
            let text = address.withUnsafeBytes { formatAddress($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
            close()
            throw Failure.bind(text, uvError(rc))
        }
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                _ = uv_tcp_getsockname(tcp, sa, &len)
                boundAddress = formatAddress(sa)
            }
        }
    }

    fileprivate func connection(_ status: Int32) { onConnection(status) }

    func close() {
        guard !closed else { return }
        closed = true
        uv_close(cuv_handle(tcp), onListenerClosed)
    }
}

private func onListen(_ s: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
    Unmanaged<Listener>.fromOpaque(s!.pointee.data).takeUnretainedValue().connection(status)
}

private func onListenerClosed(_ h: UnsafeMutablePointer<uv_handle_t>?) {
    h!.withMemoryRebound(to: uv_tcp_t.self, capacity: 1) { $0.deallocate() }
}

/// Resolves `host` (a name, an IPv4 or an IPv6 literal) to one socket address, preferring
/// IPv4 as the original server did (`localhost` is 127.0.0.1 for its clients).
func resolve(loop: EventLoop, host: String, port: Int) throws -> [UInt8] {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    let req = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
    defer { req.deallocate() }
    let rc = uv_getaddrinfo(loop.raw, req, nil, host, String(port), &hints)
    guard rc == 0, let first = req.pointee.addrinfo else {
        throw Listener.Failure.resolve(host, uvError(rc))
    }
    defer { uv_freeaddrinfo(first) }
    guard let address = preferredAddress(first) else { throw Listener.Failure.resolve(host, "no address") }
    return address
}

/// The socket address to use from a `getaddrinfo` list: the first IPv4 one, else the first.
func preferredAddress(_ list: UnsafeMutablePointer<addrinfo>) -> [UInt8]? {
    var chosen: UnsafeMutablePointer<addrinfo>? = nil
    var p: UnsafeMutablePointer<addrinfo>? = list
    while let ai = p {
        if ai.pointee.ai_family == AF_INET { chosen = ai; break }
        if chosen == nil { chosen = ai }
        p = ai.pointee.ai_next
    }
    guard let ai = chosen, let sa = ai.pointee.ai_addr else { return nil }
    return Array(UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
}
