import ChatCore
import Glibc

/// `tcp_chat status`: asks a node for its view of the cluster (docs/operations.md).
/// Sends `TCPCHAT-STATUS/1`, answers the node's `NONCE` with `AUTH <proof>` when given the
/// cluster secret (full report: rooms and member counts) or `PUBLIC`, reads one JSON line.
public enum StatusClient {
    public enum Failure: Error, CustomStringConvertible {
        case connect(String)
        case protocolError(String)
        public var description: String {
            switch self {
            case .connect(let s): return s
            case .protocolError(let s): return s
            }
        }
    }

    /// The node's JSON report, as text.
    /// With `tls`, the node's certificate must verify against `caFile` (or the system store)
    /// and name `host` (docs/tls.md).
    public static func fetch(host: String, port: Int, secret: [UInt8]?, tls: Bool = false, caFile: String? = nil,
                             timeoutMs: Int = 5000) -> Result<String, Failure> {
        guard let signals = SignalPipe(signals: [SIGINT, SIGTERM]) else {
            return .failure(.connect("cannot set up signal handling"))
        }
        defer { signals.uninstall() }
        let fd: Int32
        switch Connector.connect(host: host, port: port, timeoutMs: timeoutMs, signals: signals) {
        case .success(let s): fd = s
        case .failure(.failed(let why)): return .failure(.connect("Cannot connect to \(host):\(port): \(why)"))
        case .failure(.interrupted): return .failure(.connect("interrupted"))
        }
        defer { close(fd) }
        if tls || caFile != nil {
            switch TLSClient.handshake(fd: fd, host: host, caFile: caFile, timeoutMs: timeoutMs, signals: signals) {
            case .success: break
            case .failure(.failed(let why)): return .failure(.connect("Cannot connect securely to \(host):\(port): \(why)."))
            case .failure(.interrupted): return .failure(.connect("interrupted"))
            }
        }
        defer { TLSClient.close(fd) }
        let deadline = Posix.nowMs() + UInt64(timeoutMs)
        var buffer: [UInt8] = []

        func sendLine(_ s: String) -> Bool {
            var bytes = Array((s + "\n").utf8)[...]
            while !bytes.isEmpty {
                let n = Posix.send(fd, bytes)
                if n < 0 { return false }
                if n == 0 {
                    var p = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
                    if Posix.poll(&p, timeoutMs: 100) < 0 || Posix.nowMs() >= deadline { return false }
                }
                bytes = bytes.dropFirst(n)
            }
            return true
        }

        func readLine() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                let now = Posix.nowMs()
                guard now < deadline else { return nil }
                var p = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
                _ = Posix.poll(&p, timeoutMs: Int(deadline - now))
                switch Posix.read(fd) {
                case .data(let d): buffer += d
                case .wouldBlock: continue
                case .eof, .error: return nil
                }
            }
        }

        guard sendLine(StatusAccess.requestLine) else { return .failure(.protocolError("the node closed the connection")) }
        guard let first = readLine() else { return .failure(.protocolError("no answer from the node (is it a tcp_chat node?)")) }
        guard first.hasPrefix("NONCE ") else {
            return .failure(.protocolError("unexpected answer \(first.prefix(40).debugDescription): not a tcp_chat node, or too old for status"))
        }
        let nonce = String(first.dropFirst(6))
        let answer = secret.map { "AUTH " + StatusAccess.proof(secret: $0, nonce: nonce) } ?? "PUBLIC"
        guard sendLine(answer), let report = readLine() else {
            return .failure(.protocolError("the node did not send its report"))
        }
        return .success(report)
    }
}
