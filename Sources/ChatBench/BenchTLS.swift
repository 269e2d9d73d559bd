import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// TLS for `tcp_chat bench --tls` (docs/tls.md): one client context, one SSL per client over
/// its non-blocking socket. The node's certificate is verified against `--tls-ca` or the
/// system store and must name the target's host, as `tcp_chat client --tls` requires.
struct BenchTLS {
    let ctx: OpaquePointer

    init(caFile: String?) throws(BenchSetupError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw BenchSetupError("cannot set up TLS") }
        _ = cssl_ctx_harden(ctx)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                SSL_CTX_free(ctx)
                throw BenchSetupError("cannot load the CA file \(caFile)")
            }
        } else {
            _ = SSL_CTX_set_default_verify_paths(ctx)
        }
        cssl_ctx_verify_required(ctx)
        self.ctx = ctx
    }

    func release() { SSL_CTX_free(ctx) }

    /// A client session on `fd` for `host` (a name or an IP literal).
    func session(fd: Int32, host: String) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 {
            _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
        } else {
            _ = SSL_set1_host(ssl, host)
            _ = cssl_set_host_name(ssl, host)
        }
        SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        return ssl
    }

    enum Step { case done, wantRead, wantWrite, failed(String) }

    static func handshake(_ ssl: OpaquePointer) -> Step {
        ERR_clear_error()
        let r = SSL_connect(ssl)
        if r == 1 { return .done }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default:
            let v = SSL_get_verify_result(ssl)
            if v != Int(X509_V_OK) {
                return .failed("the node's certificate was not accepted (\(String(cString: X509_verify_cert_error_string(v))))")
            }
            var buf = [CChar](repeating: 0, count: 256)
            cssl_last_error(&buf, buf.count)
            let detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failed("TLS handshake failed (\(detail.isEmpty ? "connection closed" : detail))")
        }
    }

    /// read(2) over TLS: bytes, 0 at close_notify, or -1 with errno set (EAGAIN to wait).
    static func read(_ ssl: OpaquePointer, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int {
        ERR_clear_error()
        let r = SSL_read(ssl, p, Int32(clamping: n))
        if r > 0 { return Int(r) }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1
        case SSL_ERROR_ZERO_RETURN: return 0
        case SSL_ERROR_SYSCALL: if errno == 0 { return 0 }; return -1
        default: errno = EPROTO; return -1
        }
    }

    /// write(2) over TLS (partial writes on): bytes taken, or -1 with errno (EAGAIN to wait).
    static func write(_ ssl: OpaquePointer, _ p: UnsafeRawPointer, _ n: Int) -> Int {
        ERR_clear_error()
        let r = SSL_write(ssl, p, Int32(clamping: n))
        if r > 0 { return Int(r) }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1
        case SSL_ERROR_SYSCALL: if errno == 0 { errno = EPIPE }; return -1
        default: errno = EPROTO; return -1
        }
    }

    static func pending(_ ssl: OpaquePointer) -> Int { Int(SSL_pending(ssl)) }
}
