// Fuzz target `http_request`: a browser's request head (docs/protocol.md, "Web clients").
//
// Input layout: [cfg][bytes...]
//   cfg bits 0-3: where to cut the bytes for the prefix check (a fraction of the length);
//   cfg bit 4: the origin policy lists `http://a.example`; bit 5: it is `*`.
//   bytes: the head as a connection sends it, after the request line was classified.
//
// Invariants:
//   - HTTPRequestParser.parse never crashes; a failure is 400 or 431;
//   - a complete head: its method is a token, its target starts with `/` and is visible
//     ASCII, its version HTTP/1.0 or 1.1, an HTTP/1.1 head has exactly one Host, field
//     names are tokens and values hold no CR, LF or other control byte but TAB; `consumed`
//     is within the input and ends with LF; bytes after the head change nothing;
//     no prefix shorter than `consumed` is complete; written back out canonically, the
//     head parses to the same request;
//   - Handshake.parse classifies the head's request line as `.http` exactly when
//     parseRequestLine accepts it;
//   - WebRoute.decide never crashes; an upgrade's accept key is the RFC 6455 function of a
//     key that decodes to 16 bytes, and only for GET /ws HTTP/1.1; a refusal's response
//     is a well-formed HTTP/1.1 head with a Content-Length matching its body.

@_cdecl("LLVMFuzzerTestOneInput")
public func httpRequestFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let cfg = input[0]
    let bytes = Array(input[1...])
    var list: [String] = []
    if cfg & 0x10 != 0 { list.append("http://a.example") }
    if cfg & 0x20 != 0 { list.append("*") }
    let policy = OriginPolicy(list)

    let result = HTTPRequestParser.parse(bytes)
    switch result {
    case .incomplete:
        require(bytes.count <= Limits.maxHTTPHeadBytes, "incomplete past the cap (\(bytes.count) bytes)")
    case .failed(let e):
        require(e.status == 400 || e.status == 431, "failure status \(e.status)")
        checkResponse(HTTPResponse.error(e), status: e.status)
    case .complete(let r, let consumed):
        require(consumed > 0 && consumed <= bytes.count && bytes[consumed - 1] == 0x0A, "consumed \(consumed) of \(bytes.count)")
        checkRequest(r)
        // Bytes after the head change nothing.
        let more = HTTPRequestParser.parse(Array(bytes[..<consumed]) + Array("GET / HTTP/1.1\r\n\r\n".utf8))
        require(more == result, "trailing bytes changed the result: \(more) vs \(result)")
        // No shorter prefix is complete.
        let cut = consumed * Int(cfg & 0x0F) / 16
        if cut < consumed {
            if case .complete = HTTPRequestParser.parse(Array(bytes[..<cut])) { fuzzFail("the \(cut)-byte prefix is complete") }
        }
        // Canonical form round trip.
        var text = "\(r.method) \(r.target) \(r.version)\r\n"
        for h in r.headers { text += "\(h.name): \(h.value)\r\n" }
        text += "\r\n"
        if case .complete(let again, _) = HTTPRequestParser.parse(Array(text.utf8)) {
            require(again == r, "canonical form parses differently: \(again) vs \(r)")
        } else if text.utf8.count <= Limits.maxHTTPHeadBytes {
            fuzzFail("canonical form does not parse: \(hex(Array(text.utf8)))")
        }
        route(r, policy)
    }
    // The request line, as the connection's first line, classifies as HTTP exactly when it parses.
    let firstLine = Array(bytes.prefix { $0 != 0x0A })
    let line = firstLine.last == 0x0D ? Array(firstLine.dropLast()) : firstLine
    let isHTTP: Bool
    if case .http(let l) = Handshake.parse(line) {
        isHTTP = true
        require(Array(l.utf8) == line, "request line text differs from the bytes")
    } else { isHTTP = false }
    require(isHTTP == (HTTPRequestParser.parseRequestLine(line) != nil), "Handshake.parse and parseRequestLine disagree")
    return 0
}

private func checkRequest(_ r: HTTPRequest) {
    require(!r.method.isEmpty && r.method.utf8.allSatisfy(HTTPRequestParser.isTokenChar), "method \(r.method)")
    require(r.target.utf8.first == 0x2F && r.target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target \(r.target)")
    require(r.version == "HTTP/1.1" || r.version == "HTTP/1.0", "version \(r.version)")
    if r.version == "HTTP/1.1" { require(r.values("host").count == 1, "HTTP/1.1 without one Host") }
    for h in r.headers {
        require(!h.name.isEmpty && h.name.utf8.allSatisfy(HTTPRequestParser.isTokenChar), "field name \(h.name)")
        // Values are decoded leniently (obs-text may be invalid UTF-8); no control bytes survive.
        require(!h.value.unicodeScalars.contains { ($0.value < 0x20 && $0.value != 0x09) || $0.value == 0x7F }, "control in value")
        require(h.value.first != " " && h.value.last != " ", "value not trimmed")
    }
}

private func route(_ r: HTTPRequest, _ policy: OriginPolicy) {
    switch WebRoute.decide(r, origins: policy) {
    case .page:
        require(r.path == "/", "page for \(r.path)")
    case .upgrade(let accept):
        require(r.method == "GET" && r.path == "/ws" && r.version == "HTTP/1.1", "upgrade of \(r.method) \(r.target)")
        guard let key = r.value("Sec-WebSocket-Key") else { fuzzFail("upgrade without a key") }
        require(Base64.decode(key)?.count == 16, "upgrade with key \(key)")
        require(accept == WebSocket.acceptKey(for: key), "accept key")
        require(Base64.decode(accept)?.count == 20, "accept key is not a SHA-1 in base64")
        if let o = r.value("Origin") { require(policy.allows(origin: o, host: r.value("Host")), "origin \(o) let through") }
    case .refuse(let e):
        require([400, 403, 404, 405, 426].contains(e.status), "refusal \(e.status)")
        checkResponse(HTTPResponse.error(e), status: e.status)
    }
}

private func checkResponse(_ bytes: [UInt8], status: Int) {
    let text = String(decoding: bytes, as: UTF8.self)
    require(text.hasPrefix("HTTP/1.1 \(status) "), "response line of \(status)")
    guard let split = bytes.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A]) else { fuzzFail("response without an end of head") }
    let body = bytes.count - split.upperBound
    require(text.contains("Content-Length: \(body)\r\n"), "Content-Length is not \(body)")
}
