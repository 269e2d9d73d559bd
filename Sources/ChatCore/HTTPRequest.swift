import Crypto

/// An HTTP/1.1 request head as a node reads it (docs/protocol.md, "Web clients"): the
/// request line and the header fields, nothing else (a node takes no request bodies).
public struct HTTPRequest: Equatable, Sendable {
    public var method: String
    /// The request target as sent (origin form: starts with `/`).
    public var target: String
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    /// Header fields in order, names as sent.
    public var headers: [Header]

    public struct Header: Equatable, Sendable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }

    public init(method: String, target: String, version: String, headers: [Header]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The target without its query (`/ws?x=1` → `/ws`).
    public var path: Substring { target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

    /// Every value of the field `name` (case-insensitive).
    public func values(_ name: String) -> [String] {
        let n = name.lowercased()
        return headers.filter { $0.name.lowercased() == n }.map(\.value)
    }

    /// The one value of `name`; nil when absent or sent more than once.
    public func value(_ name: String) -> String? {
        let v = values(name)
        return v.count == 1 ? v[0] : nil
    }

    /// True when the comma-separated field `name` lists `token` (case-insensitive).
    public func lists(_ name: String, _ token: String) -> Bool {
        let t = token.lowercased()
        return values(name).contains { v in
            v.split(separator: ",").contains { $0.trimmingSpaces.lowercased() == t }
        }
    }
}

/// Why a request head cannot be served.
public struct HTTPError: Error, Equatable, Sendable {
    public var status: Int
    public var reason: String
    public init(_ status: Int, _ reason: String) { self.status = status; self.reason = reason }
}

/// Reads a request head from bytes (RFC 9112 §2–5): `METHOD SP TARGET SP HTTP/1.x CRLF`,
/// header fields `Name: value CRLF`, an empty line. A bare LF ends a line too. Pure.
public enum HTTPRequestParser {
    public enum Result: Equatable, Sendable {
        /// The head is not complete yet.
        case incomplete
        /// The head, and how many bytes it took (what follows belongs to the next protocol).
        case complete(HTTPRequest, consumed: Int)
        case failed(HTTPError)
    }

    /// Tries to read a whole request head from the start of `bytes`. Past `maxBytes`
    /// without the empty line that ends it, the answer is 431.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxBytes: Int = Limits.maxHTTPHeadBytes) -> Result {
        // The end of the head: an empty line.
        var lines: [Range<Int>] = []
        var lineStart = 0
        var end = -1
        var i = 0
        let n = bytes.count
        while i < n {
            if bytes[i] == 0x0A {
                var lineEnd = i
                if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                if lineEnd == lineStart && !lines.isEmpty { end = i + 1; break }
                if lineEnd == lineStart && lines.isEmpty {
                    // RFC 9112 §2.2: empty lines before the request line are skipped.
                    lineStart = i + 1
                    i += 1
                    continue
                }
                lines.append(lineStart..<lineEnd)
                if lines.count > Limits.maxHTTPHeaderFields + 1 {
                    return .failed(HTTPError(431, "more than \(Limits.maxHTTPHeaderFields) header fields"))
                }
                lineStart = i + 1
            }
            i += 1
            if i > maxBytes { return .failed(HTTPError(431, "request head over \(maxBytes) bytes")) }
        }
        guard end >= 0 else {
            return n > maxBytes ? .failed(HTTPError(431, "request head over \(maxBytes) bytes")) : .incomplete
        }
        guard let first = lines.first, let line = parseRequestLine(UnsafeRawBufferPointer(rebasing: bytes[first])) else {
            return .failed(HTTPError(400, "malformed request line"))
        }
        var headers: [HTTPRequest.Header] = []
        for r in lines.dropFirst() {
            let field = UnsafeRawBufferPointer(rebasing: bytes[r])
            if field.first == 0x20 || field.first == 0x09 { return .failed(HTTPError(400, "obsolete line folding")) }
            guard let colon = field.firstIndex(of: 0x3A), colon > 0 else { return .failed(HTTPError(400, "malformed header field")) }
            let name = field[0..<colon]
            guard name.allSatisfy(isTokenChar) else { return .failed(HTTPError(400, "malformed header field name")) }
            var vs = colon + 1, ve = field.count
            while vs < ve && (field[vs] == 0x20 || field[vs] == 0x09) { vs += 1 }
            while ve > vs && (field[ve - 1] == 0x20 || field[ve - 1] == 0x09) { ve -= 1 }
            let value = field[vs..<ve]
            // Field values: visible ASCII, spaces, tabs and obs-text; no other control bytes.
            guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                return .failed(HTTPError(400, "control character in a header field"))
            }
            headers.append(.init(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        let request = HTTPRequest(method: line.method, target: line.target, version: line.version, headers: headers)
        if request.version == "HTTP/1.1" && request.value("Host") == nil {
            return .failed(HTTPError(400, "HTTP/1.1 request without exactly one Host field"))
        }
        return .complete(request, consumed: end)
    }

    public static func parse(_ bytes: [UInt8], maxBytes: Int = Limits.maxHTTPHeadBytes) -> Result {
        bytes.withUnsafeBytes { parse($0, maxBytes: maxBytes) }
    }

    /// `METHOD SP TARGET SP HTTP/1.0|1.1`: a method token, an origin-form target of
    /// visible ASCII, and the version; nil otherwise.
    public static func parseRequestLine<C: Collection>(_ line: C) -> (method: String, target: String, version: String)?
    where C.Element == UInt8 {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let method = parts[0], target = parts[1], version = parts[2]
        guard !method.isEmpty, method.count <= 16, method.allSatisfy(isTokenChar) else { return nil }
        guard target.first == 0x2F, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        guard version.elementsEqual("HTTP/1.1".utf8) || version.elementsEqual("HTTP/1.0".utf8) else { return nil }
        return (String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self),
                String(decoding: version, as: UTF8.self))
    }

    /// RFC 9110 §5.6.2 tchar.
    @inline(__always)
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }
}

/// Which origins may open WebSocket sessions (`--web-origins`): the node's own host
/// always (the Origin's host and port equal the Host field), plus the listed origins;
/// `*` allows every origin. A request without Origin is not from a browser page and is
/// allowed (Origin protects browser visitors, not the node).
public struct OriginPolicy: Equatable, Sendable {
    public var allowed: [String]
    public var allowAny: Bool

    public init(_ list: [String] = []) {
        let cleaned = list.map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
        allowAny = cleaned.contains("*")
        allowed = cleaned.filter { $0 != "*" }.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// `--web-origins a,b,c` / `TCP_CHAT_WEB_ORIGINS`.
    public init(parsing text: String) {
        self.init(text.split(separator: ",").map(String.init))
    }

    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        if allowAny { return true }
        let o = origin.lowercased()
        if allowed.contains(o) { return true }
        guard let host, let authority = OriginPolicy.authority(of: o) else { return false }
        let h = host.lowercased()
        if authority.hostPort == h { return true }
        // The default port may be written on one side only.
        if let port = authority.defaultPort, authority.hostPort + ":\(port)" == h { return true }
        if let port = authority.defaultPort, authority.hostPort.hasSuffix(":\(port)"),
           String(authority.hostPort.dropLast(":\(port)".count)) == h { return true }
        return false
    }

    /// True for `http://HOST[:PORT]` or `https://HOST[:PORT]` (a trailing `/` allowed).
    public static func isOrigin(_ text: String) -> Bool {
        var t = text.lowercased()
        if t.hasSuffix("/") { t.removeLast() }
        guard let a = authority(of: t) else { return false }
        return !a.hostPort.contains(" ") && !a.hostPort.hasPrefix(":")
    }

    /// `http://host:port` → ("host:port", default port 80); nil for other forms (`null`).
    static func authority(of origin: String) -> (hostPort: String, defaultPort: Int?)? {
        for (scheme, port) in [("http://", 80), ("https://", 443)] where origin.hasPrefix(scheme) {
            let rest = origin.dropFirst(scheme.count)
            guard !rest.isEmpty, !rest.contains("/") else { return nil }
            return (String(rest), port)
        }
        return nil
    }
}

/// What a node does with a request head (docs/protocol.md, "Web clients").
public enum WebRoute: Equatable, Sendable {
    /// `GET /` (or `HEAD /`): the chat page.
    case page(headOnly: Bool)
    /// `GET /ws` with a valid upgrade: switch to WebSocket, answering with this accept key.
    case upgrade(accept: String)
    /// An error response.
    case refuse(HTTPError)

    /// Routes a request: `/` is the page, `/ws` the WebSocket endpoint, other paths 404,
    /// other methods 405; an upgrade needs `Upgrade: websocket`, `Connection: upgrade`,
    /// version 13, a 16-byte base64 key, and an allowed Origin (403 otherwise).
    public static func decide(_ r: HTTPRequest, origins: OriginPolicy) -> WebRoute {
        switch r.path {
        case "/":
            if r.method == "GET" { return .page(headOnly: false) }
            if r.method == "HEAD" { return .page(headOnly: true) }
            return .refuse(HTTPError(405, "only GET and HEAD are served here"))
        case "/ws":
            guard r.method == "GET" else { return .refuse(HTTPError(405, "a WebSocket upgrade is a GET")) }
            guard r.version == "HTTP/1.1" else { return .refuse(HTTPError(400, "a WebSocket upgrade needs HTTP/1.1")) }
            guard r.lists("Upgrade", "websocket") else {
                return .refuse(HTTPError(426, "this is the WebSocket endpoint: send Upgrade: websocket"))
            }
            guard r.lists("Connection", "upgrade") else { return .refuse(HTTPError(400, "Connection must list upgrade")) }
            guard r.value("Sec-WebSocket-Version") == "13" else {
                return .refuse(HTTPError(426, "Sec-WebSocket-Version must be 13"))
            }
            guard let key = r.value("Sec-WebSocket-Key"), Base64.decode(key)?.count == 16 else {
                return .refuse(HTTPError(400, "Sec-WebSocket-Key must be 16 bytes in base64"))
            }
            let origins_ = r.values("Origin")
            guard origins_.count <= 1, origins.allows(origin: origins_.first, host: r.value("Host")) else {
                return .refuse(HTTPError(403, "origin not allowed"))
            }
            return .upgrade(accept: WebSocket.acceptKey(for: key))
        default:
            return .refuse(HTTPError(404, "not found: the chat page is at /"))
        }
    }
}

/// Response heads a node sends, built from its parts (no I/O).
public enum HTTPResponse {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 426: return "Upgrade Required"
        case 431: return "Request Header Fields Too Large"
        default: return "Error"
        }
    }

    /// A complete error response with a one-line text body; the connection closes after it.
    public static func error(_ e: HTTPError) -> [UInt8] {
        let body = "\(e.status) \(reason(e.status)): \(e.reason)\n"
        var extra = ""
        if e.status == 405 { extra += "Allow: GET, HEAD\r\n" }
        if e.status == 426 { extra += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" }
        let head = "HTTP/1.1 \(e.status) \(reason(e.status))\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n" +
            "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n" + extra + "Connection: close\r\n\r\n"
        return Array((head + body).utf8)
    }

    /// A Content-Security-Policy source for an inline `<script>` or `<style>` whose text
    /// is exactly `text`: `'sha256-<base64>'`.
    public static func cspHashSource(_ text: String) -> String {
        "'sha256-" + Base64.encode(Array(SHA256.hash(data: Array(text.utf8)))) + "'"
    }

    /// The `101 Switching Protocols` answer to an accepted upgrade.
    public static func switching(accept: String) -> [UInt8] {
        Array(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Accept: \(accept)\r\n\r\n").utf8)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
