/// `HOST:PORT` or `[IPV6]:PORT`, the one parser of addresses for the command line, the
/// peer protocol and the status report (docs/cluster-protocol.md §2). A host is a DNS name
/// or an IPv4 address (`A-Z a-z 0-9 . - _`), or an IPv6 address in brackets (hex digits,
/// `:` and `.`, with an optional `%zone` of the name characters): nothing that could carry
/// a terminal escape, a space or a separator of the wire format.
public struct HostPort: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    /// Longest address text accepted (a DNS name is at most 253 characters).
    public static let maxLength = 300

    /// Nil unless `text` is a well-formed address with a port in 1…65535 (or 0 when
    /// `allowPortZero`: a listen address that asks for any free port).
    public init?<S: StringProtocol>(_ text: S, allowPortZero: Bool = false) {
        let u = Array(text.utf8)
        guard u.count <= HostPort.maxLength, let colon = u.lastIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        let portBytes = u[(colon + 1)...]
        guard !portBytes.isEmpty, portBytes.count <= 5, portBytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let port = Int(String(decoding: portBytes, as: UTF8.self)),
              port <= 65535, port > 0 || allowPortZero else { return nil }
        var hostBytes = u[..<colon]
        if hostBytes.first == UInt8(ascii: "[") {
            guard hostBytes.count > 2, hostBytes.last == UInt8(ascii: "]") else { return nil }
            hostBytes = hostBytes.dropFirst().dropLast()
            var zone = false
            for c in hostBytes {
                if c == UInt8(ascii: "%") { if zone { return nil }; zone = true; continue }
                guard zone ? HostPort.isNameByte(c) : (HostPort.isHexByte(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: ".")) else { return nil }
            }
        } else {
            guard !hostBytes.isEmpty, hostBytes.allSatisfy(HostPort.isNameByte) else { return nil }
        }
        host = String(decoding: hostBytes, as: UTF8.self)
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x2D || c == 0x5F
    }

    static func isHexByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }
}
