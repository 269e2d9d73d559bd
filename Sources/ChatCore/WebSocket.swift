import Crypto

/// The server side of RFC 6455 (docs/protocol.md, "Web clients"): the accept key, the
/// frames a node sends, and a decoder for what a browser sends. No I/O.
public enum WebSocket {
    /// RFC 6455 §1.3: appended to the client's key before hashing.
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
    public static func acceptKey(for key: String) -> String {
        var h = Insecure.SHA1()
        h.update(data: Array((key + guid).utf8))
        return Base64.encode(Array(h.finalize()))
    }

    /// Opcodes (RFC 6455 §5.2).
    public enum Opcode: UInt8, Sendable {
        case continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA
    }

    /// Close codes a node sends (RFC 6455 §7.4.1).
    public enum CloseCode: UInt16, Sendable {
        case normal = 1000
        case goingAway = 1001
        case protocolError = 1002
        case unsupportedData = 1003
        case invalidPayload = 1007
        case policyViolation = 1008
        case messageTooBig = 1009
        case internalError = 1011
    }

    /// Bytes of an unmasked server frame header for a payload of `length` bytes.
    @inline(__always)
    public static func headerLength(payload length: Int) -> Int {
        length < 126 ? 2 : (length < 65536 ? 4 : 10)
    }

    /// Writes a final, unmasked frame header (FIN set) at `to`; returns its length.
    @discardableResult
    public static func writeHeader(opcode: Opcode, length: Int, to p: UnsafeMutableRawPointer) -> Int {
        p.storeBytes(of: 0x80 | opcode.rawValue, as: UInt8.self)
        if length < 126 {
            p.storeBytes(of: UInt8(length), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if length < 65536 {
            p.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(length >> 8), toByteOffset: 2, as: UInt8.self)
            p.storeBytes(of: UInt8(length & 0xFF), toByteOffset: 3, as: UInt8.self)
            return 4
        }
        p.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
        for i in 0..<8 { p.storeBytes(of: UInt8((UInt64(length) >> (56 - 8 * UInt64(i))) & 0xFF), toByteOffset: 2 + i, as: UInt8.self) }
        return 10
    }

    /// One whole server frame (header and payload), for tests and control frames.
    public static func frame(_ opcode: Opcode, _ payload: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: headerLength(payload: payload.count))
        out.withUnsafeMutableBytes { _ = writeHeader(opcode: opcode, length: payload.count, to: $0.baseAddress!) }
        return out + payload
    }

    /// A close frame's payload: the code, big-endian, then a reason (cut to fit 125 bytes
    /// on a character boundary).
    public static func closePayload(_ code: UInt16?, reason: String = "") -> [UInt8] {
        guard let code else { return [] }
        var r = Array(reason.utf8)
        if r.count > 123 {
            var n = 123
            while n > 0 && r[n] & 0xC0 == 0x80 { n -= 1 }
            r = Array(r[..<n])
        }
        return [UInt8(code >> 8), UInt8(code & 0xFF)] + r
    }

    /// A close code a peer may send (RFC 6455 §7.4): 1000–1003, 1007–1011 and 3000–4999.
    public static func isValidReceivedCloseCode(_ c: UInt16) -> Bool {
        switch c {
        case 1000...1003, 1007...1011, 3000...4999: return true
        default: return false
        }
    }
}

/// What the decoder makes of a browser's bytes.
public enum WebSocketEvent: Equatable, Sendable {
    /// A complete text message (its fragments joined), valid UTF-8.
    case text([UInt8])
    /// A ping: answer with a pong carrying `payload`.
    case ping([UInt8])
    /// The browser closes: answer with a close frame carrying `code` (none when it sent none).
    case close(code: UInt16?)
    /// The browser broke the protocol: send a close frame with `code`, then close.
    case fail(WebSocket.CloseCode, reason: String)
}

/// Cuts a browser's byte stream into WebSocket messages (RFC 6455 §5), server side:
/// every frame must be masked; text messages may come in fragments (continuation frames,
/// between which control frames may come); control frames are final and at most 125 bytes;
/// reserved bits must be zero. A message longer than `maxMessageBytes` fails with 1009 as
/// soon as its length is announced (nothing of it is buffered), binary with 1003, text
/// that is not UTF-8 with 1007 at the first fragment that shows it, anything else with 1002.
/// Pongs are dropped here. After a `.fail` or a `.close` it hands out nothing more.
public struct WebSocketDecoder: Sendable {
    public var maxMessageBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// The text message being assembled from fragments.
    private var message: [UInt8] = []
    private var inMessage = false
    private var utf8 = UTF8Validator()
    private var finished = false

    public init(maxMessageBytes: Int) { self.maxMessageBytes = maxMessageBytes }

    /// Bytes received and not yet decoded.
    public var bufferedBytes: Int { buffer.count - start }
    public var isFinished: Bool { finished }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !finished else { return }
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { append($0) }
    }

    /// Frees the buffers when nothing is buffered (an idle session keeps no memory).
    public mutating func releaseIfEmpty() {
        guard start == buffer.count, !inMessage else { return }
        buffer = []
        start = 0
        message = []
    }

    private mutating func fail(_ code: WebSocket.CloseCode, _ reason: String) -> WebSocketEvent {
        finished = true
        buffer = []
        start = 0
        message = []
        return .fail(code, reason: reason)
    }

    /// The next event, or nil when more bytes are needed.
    public mutating func next() -> WebSocketEvent? {
        while !finished {
            let avail = buffer.count - start
            guard avail >= 2 else { return nil }
            let b0 = buffer[start], b1 = buffer[start + 1]
            let fin = b0 & 0x80 != 0
            if b0 & 0x70 != 0 { return fail(.protocolError, "reserved bits set") }
            guard let op = WebSocket.Opcode(rawValue: b0 & 0x0F) else { return fail(.protocolError, "unknown opcode") }
            if b1 & 0x80 == 0 { return fail(.protocolError, "client frame not masked") }
            var length = UInt64(b1 & 0x7F)
            var headerLength = 2
            let isControl = op.rawValue >= 0x8
            if isControl {
                if !fin { return fail(.protocolError, "fragmented control frame") }
                if length > 125 { return fail(.protocolError, "control frame over 125 bytes") }
            }
            if length == 126 {
                guard avail >= 4 else { return nil }
                length = UInt64(buffer[start + 2]) << 8 | UInt64(buffer[start + 3])
                if length < 126 { return fail(.protocolError, "length not minimally encoded") }
                headerLength = 4
            } else if length == 127 {
                guard avail >= 10 else { return nil }
                length = 0
                for i in 0..<8 { length = length << 8 | UInt64(buffer[start + 2 + i]) }
                if length >> 63 != 0 { return fail(.protocolError, "length with its top bit set") }
                if length < 65536 { return fail(.protocolError, "length not minimally encoded") }
                headerLength = 10
            }
            // What the frame means for the message, checked before its payload is waited for.
            switch op {
            case .continuation:
                if !inMessage { return fail(.protocolError, "continuation frame without a message") }
            case .text:
                if inMessage { return fail(.protocolError, "new message inside a fragmented message") }
            case .binary:
                return fail(.unsupportedData, "binary messages are not accepted; send text")
            case .close, .ping, .pong:
                break
            }
            if !isControl && UInt64(message.count) + length > UInt64(maxMessageBytes) {
                return fail(.messageTooBig, "message over \(maxMessageBytes) bytes")
            }
            let total = headerLength + 4 + Int(length)
            guard avail >= total else { return nil }
            let maskAt = start + headerLength
            let payloadAt = maskAt + 4
            let n = Int(length)
            let mask = (buffer[maskAt], buffer[maskAt + 1], buffer[maskAt + 2], buffer[maskAt + 3])
            start += total
            if isControl {
                var payload = [UInt8](repeating: 0, count: n)
                for i in 0..<n { payload[i] = buffer[payloadAt + i] ^ maskByte(mask, i) }
                switch op {
                case .ping: return .ping(payload)
                case .pong: continue
                default:
                    finished = true
                    if n == 0 { return .close(code: nil) }
                    if n == 1 { return fail(.protocolError, "close frame with a 1-byte payload") }
                    let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
                    if !WebSocket.isValidReceivedCloseCode(code) { return fail(.protocolError, "invalid close code \(code)") }
                    var v = UTF8Validator()
                    if !v.feed(payload[2...]) || !v.isComplete { return fail(.invalidPayload, "close reason is not UTF-8") }
                    return .close(code: code)
                }
            }
            if op == .text {
                inMessage = true
                message.removeAll(keepingCapacity: true)
                utf8 = UTF8Validator()
            }
            let from = message.count
            message.reserveCapacity(from + n)
            buffer.withUnsafeBufferPointer { src in
                for i in 0..<n { message.append(src[payloadAt + i] ^ maskByte(mask, i)) }
            }
            if !utf8.feed(message[from...]) { return fail(.invalidPayload, "message is not valid UTF-8") }
            if fin {
                if !utf8.isComplete { return fail(.invalidPayload, "message is not valid UTF-8") }
                inMessage = false
                let m = message
                message.removeAll(keepingCapacity: true)
                return .text(m)
            }
        }
        return nil
    }

    @inline(__always)
    private func maskByte(_ m: (UInt8, UInt8, UInt8, UInt8), _ i: Int) -> UInt8 {
        switch i & 3 {
        case 0: return m.0
        case 1: return m.1
        case 2: return m.2
        default: return m.3
        }
    }
}

/// UTF-8 validation fed in pieces (a message's fragments): the same rules as `TextCheck`
/// (no overlongs, surrogates, or code points past U+10FFFF), with a sequence allowed to
/// continue in the next piece.
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected.
    private var need = 0
    /// Bounds of the next continuation byte (tighter right after some lead bytes).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when no sequence is left open.
    public var isComplete: Bool { need == 0 }

    /// Feeds bytes; false at the first byte that cannot be valid UTF-8.
    public mutating func feed<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        for b in bytes {
            if need > 0 {
                guard b >= lower && b <= upper else { return false }
                lower = 0x80
                upper = 0xBF
                need -= 1
                continue
            }
            if b < 0x80 { continue }
            switch b {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return false
            }
        }
        return true
    }
}

/// Standard base64 (RFC 4648 §4) with padding, for the WebSocket keys.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= data.count {
            let v = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = data.count - i
        if rest == 1 {
            let v = UInt32(data[i]) << 16
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], 0x3D, 0x3D]
        } else if rest == 2 {
            let v = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], 0x3D]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes, or nil when `text` is not canonical padded base64.
    public static func decode(_ text: String) -> [UInt8]? {
        let s = Array(text.utf8)
        guard s.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            var v: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = s[i + j]
                let d: UInt32
                if c == 0x3D {
                    guard i + 4 == s.count, j >= 2 else { return nil }
                    pad += 1
                    d = 0
                } else {
                    guard pad == 0, let k = alphabet.firstIndex(of: c) else { return nil }
                    d = UInt32(k)
                }
                v = v << 6 | d
            }
            out.append(UInt8(v >> 16))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        guard encode(out) == text else { return nil }
        return out
    }
}
