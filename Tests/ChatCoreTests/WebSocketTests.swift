import Testing
@testable import ChatCore

/// A masked client frame, as a browser sends it.
func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
                 mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D], masked: Bool = true, forceLength: Int? = nil) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
    let n = forceLength ?? payload.count
    let m: UInt8 = masked ? 0x80 : 0
    if n < 126 { out.append(m | UInt8(n)) } else if n < 65536 {
        out += [m | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
    } else {
        out.append(m | 127)
        for i in 0..<8 { out.append(UInt8((UInt64(n) >> (56 - 8 * UInt64(i))) & 0xFF)) }
    }
    if masked {
        out += mask
        for (i, b) in payload.enumerated() { out.append(b ^ mask[i & 3]) }
    } else {
        out += payload
    }
    return out
}

@Suite struct WebSocketDecoderTests {
    func events(_ bytes: [UInt8], max: Int = 4096, chunk: Int? = nil) -> [WebSocketEvent] {
        var d = WebSocketDecoder(maxMessageBytes: max)
        var out: [WebSocketEvent] = []
        let step = chunk ?? Swift.max(bytes.count, 1)
        var i = 0
        repeat {
            d.append(contentsOf: bytes[i..<Swift.min(i + step, bytes.count)])
            while let e = d.next() { out.append(e) }
            i += step
        } while i < bytes.count
        return out
    }

    func failCode(_ e: [WebSocketEvent]) -> WebSocket.CloseCode? {
        if case .fail(let c, _)? = e.last { return c }
        return nil
    }

    @Test func decodesAMaskedTextFrame() {
        #expect(events(clientFrame(1, Array("hello".utf8))) == [.text(Array("hello".utf8))])
    }

    @Test func decodesByteByByteAndAcrossFrames() {
        let bytes = clientFrame(1, Array("one".utf8)) + clientFrame(1, Array("two".utf8))
        #expect(events(bytes, chunk: 1) == [.text(Array("one".utf8)), .text(Array("two".utf8))])
    }

    @Test func joinsFragmentsWithControlFramesBetween() {
        let bytes = clientFrame(1, Array("he".utf8), fin: false) + clientFrame(9, [1, 2]) +
            clientFrame(0, Array("ll".utf8), fin: false) + clientFrame(0xA, []) + clientFrame(0, Array("o".utf8))
        #expect(events(bytes) == [.ping([1, 2]), .text(Array("hello".utf8))])
    }

    @Test func extendedLengths() {
        let mid = [UInt8](repeating: 0x61, count: 300)
        let big = [UInt8](repeating: 0x62, count: 70_000)
        #expect(events(clientFrame(1, mid)) == [.text(mid)])
        #expect(events(clientFrame(1, big), max: 100_000, chunk: 4000) == [.text(big)])
    }

    @Test func unmaskedFrameIs1002() {
        #expect(failCode(events(clientFrame(1, Array("hi".utf8), masked: false))) == .protocolError)
    }

    @Test func reservedBitsAndUnknownOpcodesAre1002() {
        #expect(failCode(events(clientFrame(1, [0x61], rsv: 0x40))) == .protocolError)
        #expect(failCode(events(clientFrame(3, [0x61]))) == .protocolError)
        #expect(failCode(events(clientFrame(0xB, []))) == .protocolError)
    }

    @Test func controlFramesMustBeShortAndFinal() {
        #expect(failCode(events(clientFrame(9, [UInt8](repeating: 0, count: 126)))) == .protocolError)
        #expect(failCode(events(clientFrame(9, [1], fin: false))) == .protocolError)
    }

    @Test func continuationWithoutMessageAndTextInsideMessageAre1002() {
        #expect(failCode(events(clientFrame(0, [0x61]))) == .protocolError)
        #expect(failCode(events(clientFrame(1, [0x61], fin: false) + clientFrame(1, [0x62]))) == .protocolError)
    }

    @Test func binaryIs1003() {
        #expect(failCode(events(clientFrame(2, [1, 2, 3]))) == .unsupportedData)
    }

    @Test func tooLongIs1009BeforeThePayloadArrives() {
        // Only the header of a 5000-byte frame: the answer comes at once.
        let header = Array(clientFrame(1, [UInt8](repeating: 0x61, count: 5000)).prefix(8))
        #expect(failCode(events(header, max: 4096)) == .messageTooBig)
        // Fragments that together pass the limit.
        let a = [UInt8](repeating: 0x61, count: 3000)
        #expect(failCode(events(clientFrame(1, a, fin: false) + clientFrame(0, a), max: 4096)) == .messageTooBig)
        #expect(events(clientFrame(1, [UInt8](repeating: 0x61, count: 4096)), max: 4096).count == 1)
    }

    @Test func invalidUTF8Is1007EvenAcrossFragments() {
        #expect(failCode(events(clientFrame(1, [0xC3, 0x28]))) == .invalidPayload)
        #expect(failCode(events(clientFrame(1, [0xED, 0xA0, 0x80]))) == .invalidPayload)  // a surrogate
        // "é" split between two fragments is fine.
        #expect(events(clientFrame(1, [0x61, 0xC3], fin: false) + clientFrame(0, [0xA9])) == [.text([0x61, 0xC3, 0xA9])])
        // A sequence left open at the end of the message is not.
        #expect(failCode(events(clientFrame(1, [0x61, 0xC3]))) == .invalidPayload)
        // Invalid in the first fragment: failed before the rest arrives.
        #expect(failCode(events(clientFrame(1, [0xFF], fin: false))) == .invalidPayload)
    }

    @Test func closeFrames() {
        #expect(events(clientFrame(8, [])) == [.close(code: nil)])
        #expect(events(clientFrame(8, [0x03, 0xE8] + Array("bye".utf8))) == [.close(code: 1000)])
        #expect(events(clientFrame(8, [0x0F, 0xA0])) == [.close(code: 4000)])
        #expect(failCode(events(clientFrame(8, [0x03]))) == .protocolError)
        #expect(failCode(events(clientFrame(8, [0x03, 0xED]))) == .protocolError)  // 1005 may not be sent
        #expect(failCode(events(clientFrame(8, [0x03, 0xE8, 0xFF]))) == .invalidPayload)
        // Nothing after a close.
        #expect(events(clientFrame(8, []) + clientFrame(1, [0x61])) == [.close(code: nil)])
    }

    @Test func nonMinimalLengthsAre1002() {
        var f = clientFrame(1, [0x61, 0x62], forceLength: 2)
        f = [f[0], 0x80 | 126, 0, 2] + Array(f[2...])
        #expect(failCode(events(f)) == .protocolError)
    }
}

@Suite struct WebSocketEncodingTests {
    @Test func acceptKeyOfRFC6455Example() {
        // RFC 6455 §1.3.
        #expect(WebSocket.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func serverFrameHeaders() {
        #expect(WebSocket.frame(.text, Array("hi".utf8)) == [0x81, 2, 0x68, 0x69])
        let mid = WebSocket.frame(.text, [UInt8](repeating: 0, count: 200))
        #expect(Array(mid.prefix(4)) == [0x81, 126, 0, 200])
        let big = WebSocket.frame(.text, [UInt8](repeating: 0, count: 70_000))
        #expect(Array(big.prefix(10)) == [0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70])
        #expect(big.count == 70_010)
    }

    @Test func payloadFrameIsBuiltOnceAndDropsTheNewline() {
        let p = Payload.line("bob - hi")
        let f = p.webSocketFrame
        #expect(f === p.webSocketFrame)
        #expect(Array(UnsafeRawBufferPointer(f.bytes)) == [0x81, 8] + Array("bob - hi".utf8))
    }

    @Test func closePayloadCutsTheReasonOnACharacterBoundary() {
        let p = WebSocket.closePayload(1000, reason: String(repeating: "é", count: 100))
        #expect(p.count <= 125)
        #expect(Array(p.prefix(2)) == [0x03, 0xE8])
        var v = UTF8Validator()
        #expect(v.feed(p.dropFirst(2)) && v.isComplete)
        #expect(WebSocket.closePayload(nil).isEmpty)
    }

    @Test func base64RoundTrip() {
        for n in 0..<20 {
            let bytes = (0..<n).map { UInt8(($0 * 37 + 11) & 0xFF) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("dGhlIHNhbXBsZSBub25jZQ==")?.count == 16)
        #expect(Base64.decode("dGhlIHNhbXBsZSBub25jZQ=") == nil)
        #expect(Base64.decode("dGhlIHNhbXBsZSBub25jZR==") == nil)  // non-canonical
        #expect(Base64.decode("dGhl*HNhbXBsZSBub25jZQ==") == nil)
    }

    @Test func utf8ValidatorAgreesWithTextCheckOnWholeInputs() {
        let samples: [[UInt8]] = [[0x61], [0xC2, 0x80], [0xE0, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF0, 0x9F, 0x98, 0x80],
                                  [0xC0, 0x80], [0xED, 0x9F, 0xBF], [0xEF, 0xBF, 0xBF], [0x80]]
        for s in samples {
            var v = UTF8Validator()
            let ok = v.feed(s) && v.isComplete
            #expect(ok == (TextCheck.problem(in: s) != .invalidUTF8), "\(s)")
        }
    }
}

@Suite struct WebSessionHubTests {
    final class WebSink: SessionSink {
        var sent: [[UInt8]] = []
        var isWebSocket: Bool { true }
        func enqueue(_ payload: Payload, length: Int) {
            let f = payload.webSocketFrame
            sent.append(Array(UnsafeRawBufferPointer(start: f.bytes.baseAddress, count: f.count)))
        }
        func loginFinished(_ session: Session?) {}
        func endSession() {}
    }
    final class LineSink: SessionSink {
        var sent: [[UInt8]] = []
        func enqueue(_ payload: Payload, length: Int) {
            sent.append(Array(UnsafeRawBufferPointer(start: payload.bytes.baseAddress, count: length)))
        }
        func loginFinished(_ session: Session?) {}
        func endSession() {}
    }

    @Test func webAndLineMembersGetTheirOwnFormsOfOneMessage() throws {
        let hub = Hub(limits: Limits())
        let w = WebSink(), l = LineSink()
        guard case .accepted(let ws) = hub.login(username: ChatName("web", maxLength: 32)!, chatID: ChatName("r", maxLength: 64)!,
                                                  framing: .raw, sink: w),
              case .accepted = hub.login(username: ChatName("tcp", maxLength: 32)!, chatID: ChatName("r", maxLength: 64)!,
                                         framing: .line, sink: l)
        else { Issue.record("logins refused"); return }
        #expect(w.sent == [[0x81, 3] + Array("200".utf8)])
        _ = hub.receive(.message(Array("hi".utf8)[...]), from: ws)
        #expect(w.sent.last == [0x81, 8] + Array("web - hi".utf8))
        #expect(l.sent.last == Array("web - hi\n".utf8))
        let w2 = WebSink()
        _ = hub.login(username: ChatName("WEB", maxLength: 32)!, chatID: ChatName("r", maxLength: 64)!, framing: .raw, sink: w2)
        #expect(w2.sent == [[0x81, 3] + Array("403".utf8)])
    }
}
