/// Bytes encoded once and shared by every receiver (the fan-out writes the same memory to
/// every member). Immutable after creation; its memory lives until the last queue or
/// in-flight write that holds it lets go, which is what libuv's `uv_write` requires.
public final class Payload: @unchecked Sendable {
    public let bytes: UnsafeMutableRawBufferPointer
    /// True when the payload ends with the `\n` that line sessions get and raw sessions don't.
    public let endsWithNewline: Bool

    public var count: Int { bytes.count }

    private init(count: Int, endsWithNewline: Bool) {
        queueRefs = 0
        bytes = .allocate(byteCount: max(count, 1), alignment: 1)
        self.endsWithNewline = endsWithNewline
        bytesCount = count
    }
    private let bytesCount: Int

    deinit { bytes.deallocate() }

    /// References held by connection queues and writes in flight. Counted without atomics
    /// (everything runs on the loop thread): the first one retains the payload once, the
    /// last one releases it, so a fan-out to N members costs one atomic retain, not N.
    public fileprivate(set) var queueRefs = 0

    /// A reference for a queue; give it back with `Unmanaged.dropQueueRef()`.
    @inline(__always)
    public func takeQueueRef() -> Unmanaged<Payload> {
        if queueRefs == 0 { _ = Unmanaged.passRetained(self) }
        queueRefs += 1
        return Unmanaged.passUnretained(self)
    }

    /// `<prefix><text>\n` in one allocation: the relayed `<USERNAME> - <TEXT>` line.
    public static func line(prefix: [UInt8], text: UnsafeRawBufferPointer) -> Payload {
        let p = Payload(count: prefix.count + text.count + 1, endsWithNewline: true)
        let base = p.bytes.baseAddress!
        prefix.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        if text.count > 0 { (base + prefix.count).copyMemory(from: text.baseAddress!, byteCount: text.count) }
        base.storeBytes(of: 0x0A, toByteOffset: prefix.count + text.count, as: UInt8.self)
        return p
    }

    /// `<user> - <text>\n` in one allocation: a chat line that came from another node.
    public static func line(user: String, text: UnsafeRawBufferPointer) -> Payload {
        var u = user
        return u.withUTF8 { name in
            let p = Payload(count: name.count + 3 + text.count + 1, endsWithNewline: true)
            let base = p.bytes.baseAddress!
            base.copyMemory(from: name.baseAddress!, byteCount: name.count)
            base.storeBytes(of: 0x20, toByteOffset: name.count, as: UInt8.self)
            base.storeBytes(of: 0x2D, toByteOffset: name.count + 1, as: UInt8.self)
            base.storeBytes(of: 0x20, toByteOffset: name.count + 2, as: UInt8.self)
            if text.count > 0 { (base + name.count + 3).copyMemory(from: text.baseAddress!, byteCount: text.count) }
            base.storeBytes(of: 0x0A, toByteOffset: name.count + 3 + text.count, as: UInt8.self)
            return p
        }
    }

    /// A short fixed text (`200`, a notice, `/exit`) followed by `\n`.
    public static func line(_ text: String) -> Payload {
        var t = text
        return t.withUTF8 { utf8 in line(prefix: [], text: UnsafeRawBufferPointer(utf8)) }
    }

    /// Bytes sent as they are, framed by the caller (the peer protocol's lines).
    public static func raw(_ data: UnsafeRawBufferPointer) -> Payload {
        let p = Payload(count: data.count, endsWithNewline: false)
        if data.count > 0 { p.bytes.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        return p
    }

    /// The same text as one WebSocket text frame (header, then the bytes without the
    /// trailing `\n`), built by the first web session that gets this payload and shared by
    /// every other: a fan-out to N browsers encodes the frame once.
    public var webSocketFrame: Payload {
        if let f = webSocketForm { return f }
        let text = UnsafeRawBufferPointer(start: bytes.baseAddress, count: endsWithNewline ? bytesCount - 1 : bytesCount)
        let f = Payload.webSocketText(text)
        webSocketForm = f
        return f
    }
    private var webSocketForm: Payload?

    /// One final, unmasked WebSocket text frame holding `text` (RFC 6455 §5.2).
    public static func webSocketText(_ text: UnsafeRawBufferPointer) -> Payload {
        webSocket(.text, text)
    }

    /// One final, unmasked WebSocket frame of `opcode` holding `payload`.
    public static func webSocket(_ opcode: WebSocket.Opcode, _ payload: UnsafeRawBufferPointer) -> Payload {
        let h = WebSocket.headerLength(payload: payload.count)
        let p = Payload(count: h + payload.count, endsWithNewline: false)
        let base = p.bytes.baseAddress!
        WebSocket.writeHeader(opcode: opcode, length: payload.count, to: base)
        if payload.count > 0 { (base + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        return p
    }

    /// How many of the bytes a session with `framing` gets.
    @inline(__always)
    public func length(for framing: Framing) -> Int {
        (framing == .raw && endsWithNewline) ? bytesCount - 1 : bytesCount
    }
}

extension Unmanaged where Instance == Payload {
    /// Gives back a reference from `takeQueueRef()`; the last one frees the payload.
    @inline(__always)
    public func dropQueueRef() {
        let last: Bool = _withUnsafeGuaranteedRef { p in
            p.queueRefs -= 1
            return p.queueRefs == 0
        }
        if last { release() }
    }
}
