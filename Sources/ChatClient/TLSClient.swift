import COpenSSL
import Glibc

/// TLS for the client side (`tcp_chat client --tls`, `status --tls`): OpenSSL over the
/// client's non-blocking socket. The handshake verifies the node's certificate against the
/// system trust store or `--tls-ca` and checks the host name; afterwards `Posix.read` and
/// `Posix.send` go through the session, so the chat code does not change (docs/tls.md).
public enum TLSClient {
    /// Sessions by socket; at most one or two per process.
    nonisolated(unsafe) private static var sessions: [Int32: OpaquePointer] = [:]

    static func session(for fd: Int32) -> OpaquePointer? { sessions.isEmpty ? nil : sessions[fd] }

    /// Hand-shakes on `fd` (connected, non-blocking) within `timeoutMs`. On failure the text
    /// is one sentence's tail, for "Cannot connect to HOST:PORT: …".
    static func handshake(fd: Int32, host: String, caFile: String?, timeoutMs: Int,
                          signals: SignalPipe?) -> Result<Void, Connector.Failure> {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { return .failure(.failed("cannot set up TLS")) }
        defer { SSL_CTX_free(ctx) }  // the SSL keeps its own reference
        _ = cssl_ctx_harden(ctx)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                return .failure(.failed("cannot load the CA file \(caFile)"))
            }
        } else {
            _ = SSL_CTX_set_default_verify_paths(ctx)
        }
        cssl_ctx_verify_required(ctx)
        guard let ssl = SSL_new(ctx) else { return .failure(.failed("cannot set up TLS")) }
        var ok = false
        defer { if !ok { SSL_free(ssl) } }
        // The certificate must name the host we dialed: a DNS name or an IP address.
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        if isIPAddress(bare) {
            _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), bare)
        } else {
            _ = SSL_set1_host(ssl, bare)
            _ = cssl_set_host_name(ssl, bare)
        }
        SSL_set_fd(ssl, fd)
        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        while true {
            ERR_clear_error()
            let r = SSL_connect(ssl)
            if r == 1 { break }
            let err = SSL_get_error(ssl, r)
            var events: Int16
            switch err {
            case SSL_ERROR_WANT_READ: events = Int16(POLLIN)
            case SSL_ERROR_WANT_WRITE: events = Int16(POLLOUT)
            default: return .failure(.failed(failure(ssl, err)))
            }
            let now = Posix.nowMs()
            guard now < deadline else { return .failure(.failed("no TLS handshake within \(timeoutMs / 1000) s")) }
            var fds = [pollfd(fd: fd, events: events, revents: 0)]
            if let signals { fds.append(pollfd(fd: signals.readFD, events: Int16(POLLIN), revents: 0)) }
            _ = Posix.poll(&fds, timeoutMs: Int(deadline - now))
            if let signals, let sig = signals.take().first(where: { $0 != SIGWINCH }) { return .failure(.interrupted(sig)) }
        }
        ok = true
        sessions[fd] = ssl
        return .success(())
    }

    /// Sends close_notify and frees the session of `fd` (before the socket is closed).
    public static func close(_ fd: Int32) {
        guard let ssl = sessions.removeValue(forKey: fd) else { return }
        _ = SSL_shutdown(ssl)
        SSL_free(ssl)
    }

    /// Sends close_notify on `fd`'s session, if it has one (before a half-close).
    static func closeNotify(_ fd: Int32) {
        guard let ssl = session(for: fd) else { return }
        _ = SSL_shutdown(ssl)
    }

    private static func failure(_ ssl: OpaquePointer, _ err: Int32) -> String {
        let v = SSL_get_verify_result(ssl)
        if v != Int(X509_V_OK) {
            ERR_clear_error()
            return "the node's certificate was not accepted (\(String(cString: X509_verify_cert_error_string(v))))"
        }
        var buf = [CChar](repeating: 0, count: 256)
        cssl_last_error(&buf, buf.count)
        let detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN || detail.isEmpty {
            return "the node closed the connection during the TLS handshake (does it have TLS on?)"
        }
        if detail.contains("wrong version number") || detail.contains("packet length too long") {
            return "the node does not speak TLS on this port"
        }
        return "TLS handshake failed (\(detail))"
    }

    private static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    /// `Posix.read` over TLS.
    static func read(_ ssl: OpaquePointer, max: Int) -> Posix.ReadResult {
        var buffer = [UInt8](repeating: 0, count: max)
        ERR_clear_error()
        let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32(max)) }
        if n > 0 { return .data(Array(buffer[0..<Int(n)])) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL: return errno == 0 ? .eof : .error(errno)
        default: return .error(EPROTO)
        }
    }

    /// `Posix.send` over TLS: bytes taken, 0 to wait, or -errno.
    static func send(_ ssl: OpaquePointer, _ bytes: ArraySlice<UInt8>) -> Int {
        guard !bytes.isEmpty else { return 0 }
        ERR_clear_error()
        let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32(clamping: $0.count)) }
        if n > 0 { return Int(n) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return 0
        case SSL_ERROR_SYSCALL: return -Int(errno == 0 ? EPIPE : errno)
        default: return -Int(EPROTO)
        }
    }
}
