import CUV

/// Resolves `host` on libuv's thread pool, so a slow DNS server never stalls the loop;
/// `done` runs on the loop with the address bytes, or nil and the error text.
final class Resolution {
    private let req = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
    private let done: ([UInt8]?, String) -> Void

    private init(done: @escaping ([UInt8]?, String) -> Void) { self.done = done }
    deinit { req.deallocate() }

    @discardableResult
    static func start(loop: EventLoop, host: String, port: Int, done: @escaping ([UInt8]?, String) -> Void) -> Resolution {
        let r = Resolution(done: done)
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        r.req.pointee.data = Unmanaged.passRetained(r).toOpaque()
        let rc = uv_getaddrinfo(loop.raw, r.req, onResolved, host, String(port), &hints)
        if rc != 0 {
            Unmanaged<Resolution>.fromOpaque(r.req.pointee.data).release()
            done(nil, uvError(rc))
        }
        return r
    }

    /// Gives up on a lookup not yet started (at stop); `done` then reports the cancellation.
    func cancel() { uv_cancel(UnsafeMutableRawPointer(req).assumingMemoryBound(to: uv_req_t.self)) }

    fileprivate func finished(_ status: Int32, _ list: UnsafeMutablePointer<addrinfo>?) {
        defer { if let list { uv_freeaddrinfo(list) } }
        guard status == 0, let list else { return done(nil, uvError(status)) }
        guard let address = preferredAddress(list) else { return done(nil, "no address") }
        done(address, "")
    }
}

private func onResolved(_ req: UnsafeMutablePointer<uv_getaddrinfo_t>?, _ status: Int32, _ res: UnsafeMutablePointer<addrinfo>?) {
    let r = Unmanaged<Resolution>.fromOpaque(req!.pointee.data).takeRetainedValue()
    r.finished(status, res)
}
