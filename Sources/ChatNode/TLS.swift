import COpenSSL
import ChatCore

/// Where a node's certificates come from (`--tls-cert`, `--tls-key`, `--tls-ca`, docs/tls.md).
public struct TLSFiles: Sendable, Equatable {
    /// PEM: the node's certificate first, then any intermediates.
    public var certificate: String
    /// PEM: the private key of that certificate.
    public var key: String
    /// PEM: the cluster CA that signs peers' certificates; nil for the system trust store.
    public var ca: String?

    public init(certificate: String, key: String, ca: String?) {
        self.certificate = certificate
        self.key = key
        self.ca = ca
    }
}

/// A TLS failure a person can read: OpenSSL's last error, cleared from its queue.
struct TLSError: Error, CustomStringConvertible {
    let description: String
    init(_ what: String) {
        var buf = [CChar](repeating: 0, count: 256)
        cssl_last_error(&buf, buf.count)
        let detail = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        description = detail.isEmpty ? what : "\(what) (\(detail))"
    }
}

/// The two OpenSSL contexts of a node, built from its files: one for connections it accepts
/// (clients, incoming peer links, status, metrics) and one for the peer links it dials.
/// Immutable; SIGHUP builds a new pair for new connections while open sessions keep
/// theirs (each SSL holds a reference to its context).
final class TLSContexts {
    let server: OpaquePointer
    let dialer: OpaquePointer
    let files: TLSFiles

    init(_ files: TLSFiles) throws {
        self.files = files
        server = try TLSContexts.make(files, server: true)
        do { dialer = try TLSContexts.make(files, server: false) } catch {
            SSL_CTX_free(server)
            throw error
        }
    }

    deinit {
        SSL_CTX_free(server)
        SSL_CTX_free(dialer)
    }

    /// Seconds until the node's certificate expires (negative once it has).
    var secondsUntilExpiry: Int { cssl_ctx_cert_seconds_left(server) }

    private static func make(_ files: TLSFiles, server: Bool) throws -> OpaquePointer {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError("cannot create a TLS context")
        }
        do {
            guard cssl_ctx_harden(ctx) == 1 else { throw TLSError("cannot apply the TLS defaults") }
            guard SSL_CTX_use_certificate_chain_file(ctx, files.certificate) == 1 else {
                throw TLSError("cannot load the certificate chain \(files.certificate)")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, files.key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSError("cannot load the private key \(files.key)")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError("the private key \(files.key) does not match the certificate \(files.certificate)")
            }
            if let ca = files.ca {
                guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                    throw TLSError("cannot load the CA file \(ca)")
                }
                if server, let names = SSL_load_client_CA_file(ca) {
                    // Tells a dialing peer which CA its certificate must come from.
                    SSL_CTX_set_client_CA_list(ctx, names)
                }
            } else {
                guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw TLSError("cannot load the system trust store") }
            }
            // Accepting: ask for a certificate, never require one at the TLS layer (chat
            // clients have none); a peer HELLO is refused unless it verified. Dialing a
            // peer: its chain must verify or the handshake fails.
            if server { cssl_ctx_verify_optional(ctx) } else { cssl_ctx_verify_required(ctx) }
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        return ctx
    }
}

/// The loop's BIO method, made once (see shim.h: the socket's bytes are lent to OpenSSL,
/// its output is taken whole at flush time).
nonisolated(unsafe) private let loopBIOMethod: OpaquePointer = cssl_io_method_new()

/// One connection's TLS state: an SSL object over the loop's BIO. The Connection feeds it the
/// socket's bytes and gets plaintext back for its handler, and hands it the handler's queued
/// plaintext at flush time and gets records back for one `uv_write`. Called on the loop only.
final class TLSSession {
    let ssl: OpaquePointer
    /// Owned by `ssl` (freed with it).
    private let bio: OpaquePointer
    /// The handshake has completed: application data flows.
    private(set) var established = false
    /// Bytes received before the handshake completed (capped by `Limits.maxTLSHandshakeBytes`).
    var handshakeBytes = 0

    /// `hostName` (a dialed peer's address host) goes in SNI only: peers are verified by the
    /// cluster CA, not by name (docs/tls.md).
    init?(context: OpaquePointer, accepting: Bool, hostName: String? = nil) {
        guard let ssl = SSL_new(context) else { return nil }
        guard let bio = cssl_attach_io(ssl, loopBIOMethod) else {
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
        self.bio = bio
        if accepting { SSL_set_accept_state(ssl) } else {
            if let hostName, !hostName.isEmpty, !hostName.contains(":"), hostName.first.map({ !$0.isNumber }) ?? false {
                _ = cssl_set_host_name(ssl, hostName)
            }
            SSL_set_connect_state(ssl)
        }
    }

    deinit { SSL_free(ssl) }

    enum ReadOutcome { case more, closedByPeer, failed(String) }

    /// Feeds `bytes` from the socket and hands every plaintext chunk to `deliver` (which
    /// returns false to stop: the connection is closing). `scratch` holds one chunk.
    func read(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawPointer, scratchSize: Int,
              deliver: (UnsafeRawBufferPointer) -> Bool) -> ReadOutcome {
        ERR_clear_error()
        cssl_io_feed(bio, bytes.baseAddress, bytes.count)
        defer { cssl_io_forget_input(bio) }
        while true {
            let n = SSL_read(ssl, scratch, Int32(scratchSize))
            if n > 0 {
                if !established { established = true }
                if !deliver(UnsafeRawBufferPointer(start: scratch, count: Int(n))) { return .more }
                continue
            }
            let err = SSL_get_error(ssl, n)
            if !established && SSL_is_init_finished(ssl) == 1 { established = true }
            switch err {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .more
            case SSL_ERROR_ZERO_RETURN: return .closedByPeer
            default: return .failed(failureText(err))
            }
        }
    }

    /// Encrypts `bytes` (after the handshake). False on failure.
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = SSL_write(ssl, bytes.baseAddress! + offset, Int32(min(bytes.count - offset, Int(Int32.max))))
            if n <= 0 { return false }
            offset += Int(n)
        }
        return true
    }

    /// Records waiting to be written (handshake messages, alerts, encrypted data).
    var pendingOutput: Int { cssl_io_pending_out(bio) }

    /// Takes the waiting records whole; the caller frees them with `free` once written.
    func takeOutput() -> (UnsafeMutableRawPointer, Int)? {
        var len = 0
        guard let p = cssl_io_take_out(bio, &len), len > 0 else { return nil }
        return (p, len)
    }

    /// Sends close_notify (queued as output).
    func shutdown() {
        guard established else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    /// The other end presented a certificate that verified against our CA.
    var peerVerified: Bool {
        SSL_get0_peer_certificate(ssl) != nil && SSL_get_verify_result(ssl) == Int(X509_V_OK)
    }

    /// Why the other end's certificate did not verify, for ERROR and log lines.
    var peerVerifyProblem: String {
        if SSL_get0_peer_certificate(ssl) == nil { return "no client certificate presented" }
        let r = SSL_get_verify_result(ssl)
        return "certificate not verified: \(String(cString: X509_verify_cert_error_string(r)))"
    }

    /// RFC 9266-style channel binding: 32 bytes of keying material under `label`.
    func exporter(label: String, count: Int = 32) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let ok = label.withCString { l in
            SSL_export_keying_material(ssl, &out, count, l, strlen(l), nil, 0, 0)
        }
        return ok == 1 ? out : nil
    }

    /// "TLSv1.3 TLS_AES_128_GCM_SHA256", for logs.
    var summary: String {
        "\(String(cString: SSL_get_version(ssl))) \(SSL_get_current_cipher(ssl).map { String(cString: SSL_CIPHER_get_name($0)) } ?? "-")"
    }

    private func failureText(_ err: Int32) -> String {
        if err == SSL_ERROR_SSL {
            let v = SSL_get_verify_result(ssl)
            if v != Int(X509_V_OK) && SSL_get0_peer_certificate(ssl) != nil && !SSL_is_server(ssl).boolValue {
                ERR_clear_error()
                return "certificate verify failed: \(String(cString: X509_verify_cert_error_string(v)))"
            }
            return TLSError("TLS error").description
        }
        if err == SSL_ERROR_SYSCALL { return "TLS stream ended unexpectedly" }
        return "TLS error \(err)"
    }
}

private extension Int32 {
    var boolValue: Bool { self != 0 }
}
