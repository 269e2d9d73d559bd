import Testing
@testable import ChatCore

@Suite struct HTTPRequestParserTests {
    func parse(_ s: String) -> HTTPRequestParser.Result { HTTPRequestParser.parse(Array(s.utf8)) }

    func request(_ s: String) -> HTTPRequest? {
        if case .complete(let r, _) = parse(s) { return r }
        return nil
    }

    func status(_ s: String) -> Int? {
        if case .failed(let e) = parse(s) { return e.status }
        return nil
    }

    static let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost:8888\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:8888\r\n\r\n"

    @Test func readsAHeadAndSaysWhereItEnds() throws {
        let text = "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nAccept:  text/html \r\n\r\nrest"
        guard case .complete(let r, let consumed) = parse(text) else { Issue.record("not complete"); return }
        #expect(r.method == "GET" && r.target == "/" && r.version == "HTTP/1.1")
        #expect(r.headers == [.init("Host", "a"), .init("X-Empty", ""), .init("Accept", "text/html")])
        #expect(consumed == text.utf8.count - 4)
    }

    @Test func bareLineFeedsAndLeadingEmptyLines() {
        #expect(request("\r\nGET /ws?x=1 HTTP/1.0\nHost: a\n\n")?.path == "/ws")
    }

    @Test func incompleteUntilTheEmptyLine() {
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\n") == .incomplete)
        #expect(parse("GET / HT") == .incomplete)
    }

    @Test func headsOverTheCapAre431() {
        let long = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: Limits.maxHTTPHeadBytes) + "\r\n\r\n"
        #expect(status(long) == 431)
        // Without an end in sight, as soon as the cap is passed.
        #expect(status("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: Limits.maxHTTPHeadBytes)) == 431)
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X: 1\r\n", count: Limits.maxHTTPHeaderFields + 1) + "\r\n"
        #expect(status(many) == 431)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n\r\n",                       // no Host
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  // two Hosts
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func malformedHeadsAre400(_ s: String) {
        #expect(status(s) == 400)
    }

    @Test func headerLookupIsCaseInsensitive() {
        let r = request(Self.upgrade)!
        #expect(r.value("HOST") == "localhost:8888")
        #expect(r.lists("connection", "upgrade"))
        #expect(!r.lists("connection", "close"))
    }

    @Test func requestLinesAreHandshakesOfTheirOwn() {
        #expect(Handshake.parse(Array("GET / HTTP/1.1".utf8)) == .http(requestLine: "GET / HTTP/1.1"))
        #expect(Handshake.parse(Array("POST /ws HTTP/1.0".utf8)) == .http(requestLine: "POST /ws HTTP/1.0"))
        #expect(Handshake.parse(Array("GET / HTTP/3".utf8)) == .malformed)
        #expect(Handshake.parse(Array("GET /".utf8)) == .malformed)
        #expect(Handshake.parse(Array("alice_room".utf8)) != .malformed)
    }
}

@Suite struct WebRouteTests {
    func route(_ s: String, origins: OriginPolicy = OriginPolicy()) -> WebRoute {
        guard case .complete(let r, _) = HTTPRequestParser.parse(Array(s.utf8)) else { return .refuse(HTTPError(0, "unparsed")) }
        return WebRoute.decide(r, origins: origins)
    }

    func code(_ r: WebRoute) -> Int? {
        if case .refuse(let e) = r { return e.status }
        return nil
    }

    @Test func pageAndUpgrade() {
        #expect(route("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == .page(headOnly: false))
        #expect(route("HEAD /?x HTTP/1.1\r\nHost: a\r\n\r\n") == .page(headOnly: true))
        #expect(route(HTTPRequestParserTests.upgrade) == .upgrade(accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    @Test func otherPathsAre404AndOtherMethods405() {
        #expect(code(route("GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n")) == 404)
        #expect(code(route("POST / HTTP/1.1\r\nHost: a\r\n\r\n")) == 405)
        #expect(code(route("DELETE /ws HTTP/1.1\r\nHost: a\r\n\r\n")) == 405)
    }

    @Test func upgradeChecks() {
        let u = HTTPRequestParserTests.upgrade
        #expect(code(route(u.replacing("Upgrade: websocket", with: "Upgrade: h2c"))) == 426)
        #expect(code(route(u.replacing("keep-alive, Upgrade", with: "keep-alive"))) == 400)
        #expect(code(route(u.replacing("Version: 13", with: "Version: 8"))) == 426)
        #expect(code(route(u.replacing("dGhlIHNhbXBsZSBub25jZQ==", with: "c2hvcnQ="))) == 400)
        #expect(code(route(u.replacing("HTTP/1.1", with: "HTTP/1.0"))) == 400)
    }

    @Test func originsDefaultToTheSameHost() {
        let u = HTTPRequestParserTests.upgrade
        #expect(code(route(u.replacing("Origin: http://localhost:8888", with: "Origin: http://evil.example"))) == 403)
        #expect(code(route(u.replacing("Origin: http://localhost:8888", with: "Origin: http://localhost:9999"))) == 403)
        #expect(code(route(u.replacing("Origin: http://localhost:8888", with: "Origin: null"))) == 403)
        // No Origin: not a browser page.
        #expect(code(route(u.replacing("Origin: http://localhost:8888\r\n", with: ""))) == nil)
        #expect(code(route(u.replacing("Origin: http://localhost:8888", with: "Origin: HTTP://LOCALHOST:8888"))) == nil)
    }

    @Test func originPolicy() {
        let p = OriginPolicy(parsing: "https://chat.example.com, http://other:8080/")
        #expect(p.allows(origin: "https://chat.example.com", host: "node1:8888"))
        #expect(p.allows(origin: "http://other:8080", host: "node1:8888"))
        #expect(!p.allows(origin: "http://chat.example.com", host: "node1:8888"))
        #expect(p.allows(origin: "http://node1:8888", host: "node1:8888"))
        #expect(OriginPolicy().allows(origin: "https://chat.example.com", host: "chat.example.com:443"))
        #expect(OriginPolicy().allows(origin: "http://chat.example.com:80", host: "chat.example.com"))
        #expect(!OriginPolicy().allows(origin: "https://chat.example.com", host: "chat.example.com:80"))
        #expect(OriginPolicy(parsing: "*").allows(origin: "http://anything", host: "x"))
    }

    @Test func responses() {
        let e = String(decoding: HTTPResponse.error(HTTPError(405, "no")), as: UTF8.self)
        #expect(e.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(e.contains("Allow: GET, HEAD\r\n"))
        let body = "405 Method Not Allowed: no\n"
        #expect(e.hasSuffix("\r\n\r\n" + body) && e.contains("Content-Length: \(body.utf8.count)\r\n"))
        #expect(String(decoding: HTTPResponse.switching(accept: "k"), as: UTF8.self)
            == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n")
    }
}
