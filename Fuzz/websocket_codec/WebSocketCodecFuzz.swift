// Fuzz target `websocket_codec`: what a browser sends after the upgrade (RFC 6455, server side).
//
// Input layout: [cfg][chunk][bytes...]
//   cfg bit 0: mode. 0 = `bytes` is the raw stream. 1 = `bytes` is a program of messages
//     that the harness encodes as a correct client would (masked, fragmented, with pings
//     between fragments): per message [nfrag][mask 4][len-1 per fragment][payload...].
//   cfg bits 1-3: maxMessageBytes index (4096, 1, 2, 3, 8, 16, 64, 300).
//   chunk: the stream is fed in reads of chunk+1 bytes (0 → one read).
//
// Invariants:
//   - the decoder never crashes; read boundaries change nothing (the events equal those of
//     one whole-buffer read);
//   - every text message is valid UTF-8 (the standard library agrees) and at most the limit;
//   - nothing comes after a close or a failure;
//   - mode 1: a correct client's messages come out exactly, in order, with a ping answered
//     in place; a message over the limit fails with 1009 and one that is not UTF-8 with 1007,
//     and those are the only failures;
//   - server frames (`WebSocket.frame`, `Payload.webSocketText`) decode back to their payload
//     by the RFC's header rules.

let limits = [4096, 1, 2, 3, 8, 16, 64, 300]

@_cdecl("LLVMFuzzerTestOneInput")
public func webSocketCodecFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    var r = FuzzReader(Array(UnsafeBufferPointer(start: data, count: size)))
    let cfg = r.byte()
    let chunk = Int(r.byte())
    let maxBytes = limits[Int(cfg >> 1 & 7)]
    if cfg & 1 == 0 {
        let stream = Array(r.rest())
        let events = decode(stream, maxBytes: maxBytes, chunk: chunk)
        check(events, maxBytes: maxBytes)
        serverFrames(Array(stream.prefix(300)))
    } else {
        program(&r, maxBytes: maxBytes, chunk: chunk)
    }
    return 0
}

func decode(_ stream: [UInt8], maxBytes: Int, chunk: Int) -> [WebSocketEvent] {
    var whole = WebSocketDecoder(maxMessageBytes: maxBytes)
    whole.append(contentsOf: stream)
    var expected: [WebSocketEvent] = []
    while let e = whole.next() { expected.append(e) }
    guard chunk > 0 else { return expected }
    var d = WebSocketDecoder(maxMessageBytes: maxBytes)
    var got: [WebSocketEvent] = []
    var i = 0
    while i < stream.count {
        d.append(contentsOf: stream[i..<min(i + chunk + 1, stream.count)])
        while let e = d.next() { got.append(e) }
        i += chunk + 1
    }
    require(got == expected, "chunked decode \(got) != whole \(expected)")
    return got
}

func check(_ events: [WebSocketEvent], maxBytes: Int) {
    for (i, e) in events.enumerated() {
        switch e {
        case .text(let m):
            require(m.count <= maxBytes, "message of \(m.count) bytes over \(maxBytes)")
            require(String(validating: m, as: UTF8.self) != nil, "message is not UTF-8: \(hex(m))")
        case .ping(let p):
            require(p.count <= 125, "ping of \(p.count) bytes")
        case .close, .fail:
            require(i == events.count - 1, "events after \(e)")
        }
    }
}

func clientFrame(_ opcode: UInt8, _ payload: ArraySlice<UInt8>, fin: Bool, mask: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
    let n = payload.count
    if n < 126 { out.append(0x80 | UInt8(n)) } else if n < 65536 { out += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)] } else {
        out.append(0x80 | 127)
        for k in 0..<8 { out.append(UInt8((UInt64(n) >> (56 - 8 * UInt64(k))) & 0xFF)) }
    }
    out += mask
    for (k, b) in payload.enumerated() { out.append(b ^ mask[k & 3]) }
    return out
}

func program(_ r: inout FuzzReader, maxBytes: Int, chunk: Int) {
    var stream: [UInt8] = []
    var messages: [[UInt8]] = []
    var count = 0
    while !r.atEnd && count < 16 {
        count += 1
        let nfrag = Int(r.byte() & 7) + 1
        var m4 = Array(r.take(4))
        while m4.count < 4 { m4.append(0) }
        let lens = (0..<nfrag).map { _ in Int(r.byte()) }
        var message: [UInt8] = []
        for (k, len) in lens.enumerated() {
            let part = r.take(len)
            message += part
            stream += clientFrame(k == 0 ? 1 : 0, part, fin: k == nfrag - 1, mask: m4)
            if k < nfrag - 1 && len & 1 == 1 { stream += clientFrame(9, [0x70], fin: true, mask: m4) }
        }
        messages.append(message)
    }
    let events = decode(stream, maxBytes: maxBytes, chunk: chunk)
    check(events, maxBytes: maxBytes)
    var it = events.makeIterator()
    for m in messages {
        var e = it.next()
        while e == .ping([0x70]) { e = it.next() }
        guard let e else { fuzzFail("events ended before message \(hex(m))") }
        if m.count > maxBytes {
            // Fails at the first fragment that passes the limit; an earlier fragment that is
            // not UTF-8 may fail first.
            if case .fail(let code, _) = e { require(code == .messageTooBig || code == .invalidPayload, "\(code) for a long message"); return }
            fuzzFail("a message of \(m.count) bytes over \(maxBytes) gave \(e)")
        }
        if String(validating: m, as: UTF8.self) == nil {
            require(e == .fail(.invalidPayload, reason: "message is not valid UTF-8"), "non-UTF-8 message gave \(e)")
            return
        }
        require(e == .text(m), "message \(hex(m)) came out as \(e)")
    }
    var rest = it.next()
    while rest == .ping([0x70]) { rest = it.next() }
    require(rest == nil, "an event more than was sent: \(String(describing: rest))")
}

func serverFrames(_ payload: [UInt8]) {
    let f = WebSocket.frame(.text, payload)
    let p = payload.withUnsafeBytes { Payload.webSocketText($0) }
    require(Array(UnsafeRawBufferPointer(p.bytes)) == f, "Payload.webSocketText differs from WebSocket.frame")
    require(f[0] == 0x81 && f[1] & 0x80 == 0, "server frame header \(hex(f.prefix(2)))")
    var n = Int(f[1]), at = 2
    if n == 126 { n = Int(f[2]) << 8 | Int(f[3]); at = 4 }
    require(n == payload.count && Array(f[at...]) == payload, "server frame payload")
}
